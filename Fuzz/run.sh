#!/usr/bin/env bash
# Builds the libFuzzer targets and runs each for FUZZ_SECONDS (default 60). `make fuzz`
# calls this; FUZZ_TARGETS picks some (e.g. "FuzzHTTP2 FuzzLua"). New inputs collect in
# .build/fuzz/corpus/<name> beside the committed seeds; crashes, hangs (FUZZ_TIMEOUT
# seconds per input), leaks and out-of-memory inputs go to .build/fuzz/artifacts/<name>/.
# Exits non-zero when any target found something.
set -u
SWIFT=${SWIFT:-swift}
SECONDS_EACH=${FUZZ_SECONDS:-60}
TIMEOUT=${FUZZ_TIMEOUT:-10}
RSS_MB=${FUZZ_RSS_MB:-2048}
TARGETS=${FUZZ_TARGETS:-"FuzzHTTP1 FuzzHTTP2 FuzzBootstrap FuzzIstio FuzzLua FuzzJSON"}
SCRATCH=.build/fuzz
# The fuzzer and AddressSanitizer on Swift code; C targets get coverage and ASan too.
FLAGS=(-c release --scratch-path "$SCRATCH" -Xswiftc -sanitize=fuzzer,address -Xswiftc -use-ld=lld
       -Xcc -fsanitize=fuzzer-no-link,address)

cd "$(dirname "$0")/.."
for t in $TARGETS; do
    MESHD_FUZZ=1 "$SWIFT" build "${FLAGS[@]}" --product "$t" || exit 2
done
bin=$(MESHD_FUZZ=1 "$SWIFT" build "${FLAGS[@]}" --show-bin-path)

dictionary() {
    case $1 in
        http1) echo Fuzz/dict/http1.dict ;;
        http2) echo Fuzz/dict/http2.dict ;;
        bootstrap|istio) echo Fuzz/dict/yaml.dict ;;
        json) echo Fuzz/dict/json.dict ;;
    esac
}

failed=""
for t in $TARGETS; do
    name=$(echo "${t#Fuzz}" | tr '[:upper:]' '[:lower:]')
    corpus=$SCRATCH/corpus/$name
    artifacts=$SCRATCH/artifacts/$name
    mkdir -p "$corpus" "$artifacts"
    dict=$(dictionary "$name")
    echo "==> $t: $SECONDS_EACH s"
    SWIFT_BACKTRACE=enable=no "$bin/$t" "$corpus" "Fuzz/corpus/$name" ${dict:+-dict="$dict"} \
        -max_total_time="$SECONDS_EACH" -timeout="$TIMEOUT" -rss_limit_mb="$RSS_MB" -max_len=8192 \
        -artifact_prefix="$artifacts/" -print_final_stats=1 -close_fd_mask=1 ${FUZZ_ARGS:-} 2>&1 \
        | tee "$SCRATCH/$name.log" | grep -E '^#[0-9]+.*(DONE|INITED)|ERROR|SUMMARY|stat::number_of_executed_units|stat::average_exec_per_sec'
    [ "${PIPESTATUS[0]}" -eq 0 ] || failed="$failed $t"
done
if [ -n "$failed" ]; then
    echo "fuzz: findings in$failed (inputs in $SCRATCH/artifacts/, logs in $SCRATCH/*.log)" >&2
    exit 1
fi
