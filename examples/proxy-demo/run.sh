#!/usr/bin/env bash
# The proxy demo: two versions of a service behind `meshd proxy`, traffic split by weight,
# then the weights and a response header changed on disk while traffic flows, with no
# restart and no failed request. Everything runs on 127.0.0.1 and is stopped at the end.
set -euo pipefail
MESHD=${1:-.build/debug/meshd}
MESHD=$(cd "$(dirname "$MESHD")" && pwd)/$(basename "$MESHD")
WORK=$(mktemp -d -t meshd-demo.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

V1=$(free_port); V2=$(free_port); PORT=$(free_port); ADMIN=$(free_port)
"$MESHD" demo-app --port "$V1" --name reviews-v1 > "$WORK/v1.log" 2>&1 & PIDS+=($!)
"$MESHD" demo-app --port "$V2" --name reviews-v2 > "$WORK/v2.log" 2>&1 & PIDS+=($!)

write_config() {  # $1 = weight of v1, $2 = weight of v2, $3 = value of x-demo-tag
  cat > "$WORK/proxy.yaml.tmp" <<YAML
listeners:
  - name: ingress
    address: 127.0.0.1
    port: $PORT
    routeConfig: main
    httpFilters:
      - name: meshd.header_mutation
        config: {response: {set: {x-demo-tag: "$3"}}}
routeConfigs:
  - name: main
    virtualHosts:
      - name: reviews
        domains: ["*"]
        routes:
          - name: reviews
            match: {prefix: /}
            route:
              weightedClusters: [{name: v1, weight: $1}, {name: v2, weight: $2}]
clusters:
  - {name: v1, endpoints: [{address: 127.0.0.1, port: $V1}]}
  - {name: v2, endpoints: [{address: 127.0.0.1, port: $V2}]}
YAML
  mv "$WORK/proxy.yaml.tmp" "$WORK/proxy.yaml"
}

write_config 80 20 first
"$MESHD" proxy --config "$WORK/proxy.yaml" --admin-port "$ADMIN" --watch-interval-ms 100 \
  > "$WORK/access.log" 2> "$WORK/proxy.log" & PIDS+=($!)
PROXY=$!
wait_port "$V1"; wait_port "$V2"; wait_port "$PORT"; wait_port "$ADMIN"

round() {  # $1 = label; sends 200 requests, prints the split, the header seen and failures
  local out v1 v2 failed tag
  out=$(for i in $(seq 200); do echo "url = \"http://127.0.0.1:$PORT/reviews/$i\""; echo "output = /dev/null"; done \
        | curl -s -K - -w '%{http_code} %header{x-service} %header{x-demo-tag}\n' || true)
  v1=$(grep -c '^200 reviews-v1 ' <<<"$out" || true)
  v2=$(grep -c '^200 reviews-v2 ' <<<"$out" || true)
  failed=$(grep -vc '^200 ' <<<"$out" || true)
  tag=$(tail -1 <<<"$out" | cut -d' ' -f3)
  printf '%-28s %8s %8s %12s %8s\n' "$1" "$v1" "$v2" "$tag" "$failed"
}

printf '\n%-28s %8s %8s %12s %8s\n' "phase (200 requests each)" "v1" "v2" "x-demo-tag" "failed"
printf '%s\n' "--------------------------------------------------------------------"
round "weights 80/20"
write_config 20 80 second
curl -s "http://127.0.0.1:$ADMIN/reload" -X POST > /dev/null
round "edited on disk: 20/80"
write_config 0 100 third
curl -s "http://127.0.0.1:$ADMIN/reload" -X POST > /dev/null
round "edited on disk: 0/100"
printf '\nconfig version now: %s (no restart: proxy pid %s throughout)\n' \
  "$(curl -s "http://127.0.0.1:$ADMIN/config_dump" | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')" "$PROXY"
echo "last access-log lines:"; tail -n 2 "$WORK/access.log"
kill -TERM "$PROXY"; wait "$PROXY" && echo "proxy drained and exited 0"
