"""The control plane and its sidecars end to end: `meshd control-plane` serving a config
directory, demo-apps each behind a `meshd sidecar`, a `meshd gateway`; traffic sent with
http.client through a client sidecar's outbound listener (`Host: reviews`) or the gateway."""
import re
import signal
import time

import pytest

from conftest import free_port, wait_for_port
from mesh_harness import Client, ControlPlane, Load, service_entry, tally, wait_until

SERVICES = service_entry("reviews") + "---" + service_entry("details")

DESTINATION_RULES = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
"""


def reviews_vs(v1=80, v2=20, subset=None, jason=True, regex=None):
    """The reviews VirtualService: `end-user: jason` → v3 (route `jason`), a `regex` uri → v3
    (route `by-regex`), else (route `canary`) subset `subset` alone, or v1/v2 by weight."""
    jason_route = """
  - name: jason
    match:
    - headers:
        end-user: {exact: jason}
    route:
    - destination: {host: reviews, subset: v3}""" if jason else ""
    regex_route = f"""
  - name: by-regex
    match:
    - uri: {{regex: "{regex}"}}
    route:
    - destination: {{host: reviews, subset: v3}}""" if regex else ""
    if subset:
        canary = f"""
    route:
    - destination: {{host: reviews, subset: {subset}}}"""
    else:
        canary = f"""
    route:
    - destination: {{host: reviews, subset: v1}}
      weight: {v1}
    - destination: {{host: reviews, subset: v2}}
      weight: {v2}"""
    return f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  http:{jason_route}{regex_route}
  - name: canary{canary}
"""


DETAILS_VS = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: details}
spec:
  hosts: [details]
  http:
  - name: all
    route:
    - destination: {host: details}
"""


def plugin(name, header, value, target="reviews", section=None, code=None):
    section_line = f", sectionName: {section}" if section else ""
    code = code or f"""function envoy_on_response(handle)
      handle:headers():add("{header}", handle:filterContext()["value"])
    end"""
    code = "\n".join("    " + line.strip() for line in code.splitlines())
    return f"""
apiVersion: extensions.meshd.io/v1alpha1
kind: LuaPlugin
metadata: {{name: {name}}}
spec:
  targetRefs:
  - {{kind: VirtualService, name: {target}{section_line}}}
  phase: STATS
  pluginConfig: {{value: "{value}"}}
  inline: |
{code}
"""


def gateway_yaml(port):
    return f"""
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: ingress}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {port}, name: http, protocol: HTTP}}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: ingress}}
spec:
  hosts: ["*"]
  gateways: [ingress]
  http:
  - name: to-reviews
    route:
    - destination: {{host: reviews, port: {{number: 9080}}}}
"""


def start_mesh(mesh, files, versions=("v1", "v2"), details=False, gateway=False):
    """Control plane on `files`, reviews versions and a client sidecar; waits until every proxy
    is ready and the mesh converged."""
    cp = ControlPlane(mesh, {"services.yaml": SERVICES, "destination-rules.yaml": DESTINATION_RULES, **files})
    cp.start()
    client = cp.sidecar("client", "v1", with_app=False)
    reviews = {v: cp.sidecar("reviews", v) for v in versions}
    if details:
        reviews["details"] = cp.sidecar("details", "v1")
    if gateway:
        cp.gateway()
    cp.wait_ready()
    return cp, client, reviews


def share(counts, key):
    return counts[key] / sum(counts.values())


def test_canary_weights_80_20(mesh):
    cp, client, _ = start_mesh(mesh, {"reviews.yaml": reviews_vs(80, 20)})
    counts = tally(client.outbound, "reviews", 2000)
    assert set(counts) == {"reviews-v1", "reviews-v2"}, counts
    assert abs(share(counts, "reviews-v1") - 0.80) <= 0.05, counts
    assert abs(share(counts, "reviews-v2") - 0.20) <= 0.05, counts


def test_header_match_and_subset_routing(mesh):
    cp, client, _ = start_mesh(mesh, {"reviews.yaml": reviews_vs(80, 20)}, versions=("v1", "v2", "v3"))
    assert tally(client.outbound, "reviews", 30, headers={"end-user": "jason"}) == {"reviews-v3": 30}
    others = tally(client.outbound, "reviews", 100, headers={"end-user": "someone"})
    assert set(others) == {"reviews-v1", "reviews-v2"}, others

    # A VirtualService to subset v2 only.
    cp.apply({"reviews.yaml": reviews_vs(subset="v2", jason=False)})
    assert tally(client.outbound, "reviews", 100) == {"reviews-v2": 100}
    assert tally(client.outbound, "reviews", 20, headers={"end-user": "jason"}) == {"reviews-v2": 20}


def test_lua_plugin_on_one_virtual_service_and_one_route(mesh):
    files = {
        "reviews.yaml": reviews_vs(50, 50),
        "details.yaml": DETAILS_VS,
        # On the whole reviews VirtualService, not on details.
        "plugin-vs.yaml": plugin("reviews-stamp", "x-reviews-plugin", "stamped"),
        # On the `jason` route of reviews only.
        "plugin-route.yaml": plugin("jason-stamp", "x-jason-plugin", "jason-route", section="jason"),
    }
    cp, client, _ = start_mesh(mesh, files, versions=("v1", "v2", "v3"), details=True)
    c = Client(client.outbound)
    for _ in range(10):
        status, headers, _ = c.get("reviews")
        assert status == 200 and headers["x-service"] in ("reviews-v1", "reviews-v2"), headers
        assert headers.get("x-reviews-plugin") == "stamped", headers
        assert "x-jason-plugin" not in headers, headers

        status, headers, _ = c.get("reviews", headers={"end-user": "jason"})
        assert status == 200 and headers["x-service"] == "reviews-v3", headers
        assert headers.get("x-reviews-plugin") == "stamped", headers
        assert headers.get("x-jason-plugin") == "jason-route", headers

        status, headers, _ = c.get("details")
        assert status == 200 and headers["x-service"] == "details-v1", headers
        assert "x-reviews-plugin" not in headers and "x-jason-plugin" not in headers, headers
    c.close()
    plugins = client.config_dump()["config"]["luaPlugins"]
    attach = {p["name"]: p.get("attachTo") for p in plugins}
    assert attach == {"default.reviews-stamp": {"virtualHosts": ["vs:default/reviews"]},
                      "default.jason-stamp": {"virtualHosts": ["vs:default/reviews"], "routes": ["jason"]}}, attach


def test_weight_edit_takes_effect_without_failed_requests(mesh):
    cp, client, _ = start_mesh(mesh, {"reviews.yaml": reviews_vs(50, 50, jason=False)})
    with Load(client.outbound, "reviews", threads=2, max_requests=5000, max_seconds=20) as load:
        load.wait_requests(100)
        edited = time.time()
        cp.write("reviews.yaml", reviews_vs(0, 100, jason=False))  # weights 0/100

        def all_v2_since():
            """The time from which every response was v2, once 200 such responses followed."""
            results = load.snapshot()
            tail = 0
            for t, who in reversed(results):
                if who != "reviews-v2":
                    break
                tail += 1
            return results[-tail][0] if tail >= 200 else None
        switched = wait_until(all_v2_since, timeout=10, what="every response from v2")
    results = load.snapshot()
    assert results[0][0] < edited, "the load did not run before the edit"
    assert {who for t, who in results if t < edited} == {"reviews-v1", "reviews-v2"}
    assert switched - edited < 3.0, f"took {switched - edited:.2f}s"
    assert load.failures() == [], load.failures()[:5]
    assert len(results) >= 300


BAD_LUA = """function envoy_on_response(handle)
  local x = 1
  if x = 2 then
    handle:headers():add("x-bad", "1")
  end
end"""


@pytest.mark.parametrize("fault", ["invalid-yaml", "unknown-kind", "bad-regex", "lua-syntax"])
def test_a_bad_file_is_refused_alone_and_the_other_files_apply(mesh, fault):
    """As istiod refuses a resource and applies the others: a bad file is refused alone (its
    last good version, if any, keeps serving) and the rest of the directory applies."""
    cp, client, _ = start_mesh(mesh, {"reviews.yaml": reviews_vs(subset="v1", jason=False)})
    assert tally(client.outbound, "reviews", 20) == {"reviews-v1": 20}
    good = cp.config_status()
    synced = cp.syncz()
    # Each fault comes with a change that routes everything to v2 (in the bad file itself
    # for bad-regex, whose last good version then stays).
    if fault == "invalid-yaml":
        files = {"reviews.yaml": reviews_vs(0, 100, jason=False), "broken.yaml": "kind: VirtualService\nspec: [unclosed\n"}
        expected = [r"broken\.yaml:\d+: invalid YAML"]
    elif fault == "unknown-kind":
        files = {"reviews.yaml": reviews_vs(0, 100, jason=False),
                 "odd.yaml": "apiVersion: networking.istio.io/v1\nkind: VirtualSerivce\nmetadata: {name: odd}\nspec: {}\n"}
        expected = [r"odd\.yaml:2: VirtualSerivce/default/odd: kind: unknown kind \"VirtualSerivce\""]
    elif fault == "bad-regex":
        files = {"reviews.yaml": reviews_vs(0, 100, jason=False, regex="/books/[0-9")}
        expected = [r"reviews\.yaml:10: VirtualService/default/reviews: spec\.http\[0\]\.match\[0\]\.uri\.regex"]
    else:
        files = {"reviews.yaml": reviews_vs(0, 100, jason=False),
                 "plugin.yaml": plugin("broken", "x-bad", "1", code=BAD_LUA)}
        expected = [r"plugin\.yaml:\d+: LuaPlugin/default/broken: spec\.inline: .*at line 3: 'then' expected"]
    for name, text in sorted(files.items(), key=lambda kv: kv[0] == "reviews.yaml"):
        cp.write(name, text)
    status = wait_until(lambda: (s := cp.config_status())["refused"] and s["rejected"] > good["rejected"]
                        and (fault == "bad-regex" or s["configVersion"] > good["configVersion"]) and s,
                        timeout=10, what="bad file refused, the others applied")
    refused = "\n".join(status["refused"])
    for pattern in expected:
        assert re.search(pattern, refused), f"{pattern!r} not in {refused!r}"
    assert status["lastRejection"] == status["refused"]
    assert "config file refused; the other files apply" in cp.process.stderr()

    if fault == "bad-regex":
        # reviews.yaml keeps its last good version; nothing else changed, so nothing is pushed.
        assert tally(client.outbound, "reviews", 50) == {"reviews-v1": 50}
        assert cp.config_status()["configVersion"] == good["configVersion"]
        convergence = cp.convergence()
        assert convergence["converged"] and convergence["proxies"] == synced, convergence
        cp.write("reviews.yaml", reviews_vs(0, 100, jason=False))
    else:
        # The good file's change applies while the bad file is reported.
        cp.wait_synced(changed_from=synced)
        assert tally(client.outbound, "reviews", 20) == {"reviews-v2": 20}
        for name in files:
            if name != "reviews.yaml":
                cp.remove(name)
    # Repaired: nothing refused any more, and v2 serves.
    wait_until(lambda: cp.config_status()["refused"] == [], timeout=10, what="nothing refused")
    cp.wait_synced()
    assert tally(client.outbound, "reviews", 20) == {"reviews-v2": 20}


RATINGS_SERVICE_AND_K8S = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: ratings}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ratings-v1}
spec:
  replicas: 1
"""

REVIEWS_WITH_RETRIES = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - retries:
      attempts: 3
    match: [{uri: {prefix: /}, statPrefix: reviews}]
    route:
    - destination: {host: reviews, subset: v2}
"""

BROKEN_DETAILS = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: details}
spec:
  hosts: [details]
  http:
  - match:
    - uri:
        regex: "/details/[0-9"
    route:
    - destination: {host: details}
"""


def test_unknown_kinds_and_a_bad_file_do_not_block_the_good_files(mesh):
    """A directory with Kubernetes kinds, a bad file and a field meshd does not enforce: the
    control plane serves the good files from the start, reports the bad file with file:line at
    /debug/config_status, warns (once) about the rest, and proxy-status shows the warnings."""
    cp, client, _ = start_mesh(mesh, {"reviews.yaml": REVIEWS_WITH_RETRIES, "k8s.yaml": RATINGS_SERVICE_AND_K8S,
                                      "details.yaml": BROKEN_DETAILS})
    assert tally(client.outbound, "reviews", 20) == {"reviews-v2": 20}
    status = cp.config_status()
    assert status["configVersion"] >= 1
    assert any(re.match(r".*/details\.yaml:10: VirtualService/default/details: spec\.http\[0\]\.match\[0\]\.uri\.regex: invalid regex", line)
               for line in status["refused"]), status
    warnings = status["warnings"]
    assert any(re.match(r".*/k8s\.yaml:3: warning: ServiceAccount/default/ratings: kind: meshd has no Kubernetes API server", w)
               for w in warnings), warnings
    assert any(re.match(r".*/k8s\.yaml:7: warning: Deployment/default/ratings-v1: kind: ", w) for w in warnings), warnings
    unenforced = [w for w in warnings if "spec.http[0].match" in w]
    assert len(unenforced) == 1 and re.match(r".*/reviews\.yaml:10: warning: VirtualService/default/reviews: "
                                             r"spec\.http\[0\]\.match\[0\]\.statPrefix: stats are not kept per match", unenforced[0]), warnings

    # proxy-status: the client (whose routes come from reviews.yaml) has the warning.
    out = cp.meshd("proxy-status")
    rows = proxy_status_rows(cp)
    assert re.search(r"\bSYNCED\s+(SYNCED|NOT SENT)\s+\S+\s+1\s*$", rows[client.id]), rows[client.id]
    assert "VirtualService/default/reviews: spec.http[0].match[0].statPrefix" in out, out

    # Logged once, not per push or per reload: a proxy joining (a push to all) and a change
    # to another file (fixing the bad one, which then applies) log it no more.
    cp.sidecar("latecomer", "v1", with_app=False)
    cp.wait_ready()
    cp.apply({"details.yaml": BROKEN_DETAILS.replace("[0-9", "[0-9]")}, changed=[client.id])
    assert cp.config_status()["refused"] == []
    assert cp.process.stderr().count("spec.http[0].match[0].statPrefix: stats are not kept per match") == 1


def test_control_plane_killed_under_load_then_restarted(mesh):
    cp, client, reviews = start_mesh(mesh, {"reviews.yaml": reviews_vs(50, 50, jason=False)})
    dumps = {w.name: w.config_dump() for w in [client, *reviews.values()]}
    with Load(client.outbound, "reviews", threads=2, max_requests=20_000, max_seconds=30) as load:
        load.wait_requests(100)
        cp.kill(signal.SIGKILL)
        killed = time.time()
        # The proxies keep serving (and keep their config) while the control plane is away.
        time.sleep(1.5)
        for w in [client, *reviews.values()]:
            dump = w.config_dump()
            assert dump["version"] == dumps[w.name]["version"] and dump["config"] == dumps[w.name]["config"], w.name
            assert dump["rejectedUpdates"] == 0
        cp.start()  # same ports, same directory
        # They reconnect and resync; held for the reconnect grace (7 s by default), they keep
        # their complete config meanwhile rather than one lacking the workloads not back yet.
        rows = cp.wait_synced(timeout=20)
        load.wait_requests(len(load.snapshot()) + 100)
    results = load.snapshot()
    away = [who for t, who in results if t > killed + 0.2]
    assert len(away) > 100 and set(away) <= {"reviews-v1", "reviews-v2"}
    assert load.failures() == [], load.failures()[:5]
    assert len(rows) == 3
    for w in [client, *reviews.values()]:
        dump = w.config_dump()
        assert dump["version"] == dumps[w.name]["version"] and dump["config"] == dumps[w.name]["config"], w.name

    # A config edit after the restart takes effect.
    cp.apply({"reviews.yaml": reviews_vs(0, 100, jason=False)})
    assert tally(client.outbound, "reviews", 50) == {"reviews-v2": 50}


def proxy_status_rows(cp):
    lines = cp.meshd("proxy-status").split("\n\n")[0].splitlines()
    assert lines[0].split() == ["NAME", "KIND", "CDS", "LDS", "EDS", "RDS", "ECDS", "VERSION", "WARNINGS", "REASON"], lines
    return {line.split()[0]: line for line in lines[1:]}


def test_nack_shown_by_proxy_status_then_fixed(mesh):
    taken = mesh.upstream("squatter")  # another process listens on the Gateway's port
    cp, client, _ = start_mesh(mesh, {"reviews.yaml": reviews_vs(50, 50, jason=False), "gateway.yaml": gateway_yaml(taken)})
    gw = cp.gateway()

    def nacked():
        rows = {r["id"]: r for r in cp.syncz()}
        return gw.id in rows and rows[gw.id]["status"] == "NACK" and rows[gw.id]
    row = wait_until(nacked, timeout=10, what="gateway NACK")
    assert f"listeners[gateway_{taken}]: cannot listen" in row["nackReason"], row
    assert row["ackedVersion"] == "" and row["sentVersion"] != ""
    others = [r for r in cp.syncz() if r["id"] != gw.id]
    assert len(others) == 3 and all(r["status"] == "SYNCED" for r in others), others

    table = proxy_status_rows(cp)
    line = table[gw.id]
    assert re.search(r"\bgateway\b.*\bNACK\b", line), line
    assert f"listeners[gateway_{taken}]: cannot listen" in line and "Address already in use" in line, line
    assert all(" SYNCED " in table[r["id"]] for r in others), table
    # The gateway runs no listener, and the squatter still answers on its port.
    assert gw.config_dump()["config"].get("listeners", []) == []
    assert Client(taken).get("anything")[1]["x-service"] == "squatter"

    # Moving the Gateway to a free port: the gateway accepts it and serves.
    port = free_port()
    cp.apply({"gateway.yaml": gateway_yaml(port)}, changed=[gw.id])
    assert " SYNCED " in proxy_status_rows(cp)[gw.id]
    wait_for_port(port)
    counts = tally(port, "bookinfo.example", 40)
    assert set(counts) == {"reviews-v1", "reviews-v2"}, counts


def table(text):
    lines = text.strip().splitlines()
    return [re.split(r"\s{2,}", line.strip()) for line in lines[1:]], lines[0].split()


def test_proxy_config_prints_what_a_sidecar_runs(mesh):
    files = {"reviews.yaml": reviews_vs(80, 20), "plugin.yaml": plugin("reviews-stamp", "x-reviews-plugin", "s")}
    cp, client, reviews = start_mesh(mesh, files)
    host = "reviews.default.svc.cluster.local"

    rows, header = table(cp.meshd("proxy-config", "listeners", "client-v1"))
    assert header == ["NAME", "ADDRESS", "PORT", "ROUTES", "TLS"]
    assert sorted(rows) == [["inbound", "127.0.0.1", str(client.inbound), "inbound", "no"],
                            ["outbound", "127.0.0.1", str(client.outbound), "outbound", "no"]]

    rows, header = table(cp.meshd("proxy-config", "routes", client.id))
    assert header == ["ROUTE", "CONFIG", "VIRTUAL", "HOST", "DOMAINS", "ROUTE", "MATCH", "ACTION"]
    reviews_routes = [r for r in rows if r[1] == "vs:default/reviews"]
    assert [r[3] for r in reviews_routes] == ["jason", "canary"], rows
    assert reviews_routes[0][0] == "outbound" and "reviews:9080" in reviews_routes[0][2].split(","), reviews_routes
    assert reviews_routes[0][4] == 'headers=[{"exact":"jason","name":"end-user"}] prefix=/'
    assert reviews_routes[0][-1] == f"outbound|9080|v3|{host}"
    assert reviews_routes[1][4] == "prefix=/"
    assert reviews_routes[1][-1] == f"outbound|9080|v1|{host}@80,outbound|9080|v2|{host}@20"
    assert ["inbound", f"inbound|{client.app_port}", "*", "default", "prefix=/", f"inbound|{client.app_port}||"] in rows, rows

    rows, header = table(cp.meshd("proxy-config", "clusters", "client-v1"))
    assert header == ["CLUSTER", "PROTOCOL", "LB", "ENDPOINTS"]
    clusters = {r[0]: r for r in rows}
    assert clusters[f"outbound|9080||{host}"][3] == "2"
    assert clusters[f"outbound|9080|v1|{host}"][3] == "1"
    assert clusters[f"outbound|9080|v2|{host}"][3] == "1"
    assert clusters[f"outbound|9080|v3|{host}"][3] == "0"
    assert clusters[f"inbound|{client.app_port}||"][3] == "1"

    rows, header = table(cp.meshd("proxy-config", "endpoints", "client-v1"))
    assert header == ["ENDPOINT", "STATUS", "CLUSTER"]
    v1, v2 = reviews["v1"].inbound, reviews["v2"].inbound
    assert sorted(rows) == sorted([
        [f"127.0.0.1:{client.app_port}", "HEALTHY", f"inbound|{client.app_port}||"],
        [f"127.0.0.1:{v1}", "HEALTHY", f"outbound|9080|v1|{host}"],
        [f"127.0.0.1:{v2}", "HEALTHY", f"outbound|9080|v2|{host}"],
        [f"127.0.0.1:{v1}", "HEALTHY", f"outbound|9080||{host}"],
        [f"127.0.0.1:{v2}", "HEALTHY", f"outbound|9080||{host}"],
    ]), rows

    rows, header = table(cp.meshd("proxy-config", "plugins", "client-v1"))
    assert header == ["PLUGIN", "PHASE", "PRIORITY", "FAIL", "STRATEGY", "ATTACHED", "TO"]
    assert rows == [["default.reviews-stamp", "STATS", "0", "FAIL_OPEN", 'virtualHosts=["vs:default/reviews"]']], rows


def test_sidecar_that_goes_away_leaves_the_registry(mesh):
    cp, client, reviews = start_mesh(mesh, {}, versions=("v1", "v2"))  # no VirtualService: all reviews endpoints
    gone = reviews["v2"]
    cluster = "outbound|9080||reviews.default.svc.cluster.local"

    def endpoints(proxy):
        rows, _ = table(cp.meshd("proxy-config", "endpoints", proxy))
        return sorted(r[0] for r in rows if r[-1] == cluster)
    assert endpoints("client-v1") == sorted([f"127.0.0.1:{reviews['v1'].inbound}", f"127.0.0.1:{gone.inbound}"])
    assert set(tally(client.outbound, "reviews", 40)) == {"reviews-v1", "reviews-v2"}
    before = cp.syncz()

    gone.sidecar.stop(signal.SIGKILL)
    wait_until(lambda: gone.id not in [r["id"] for r in cp.syncz()], timeout=10, what="sidecar gone from syncz")
    cp.wait_synced(changed_from=[r for r in before if r["id"] != gone.id])
    assert endpoints("client-v1") == [f"127.0.0.1:{reviews['v1'].inbound}"]
    assert endpoints("reviews-v1") == [f"127.0.0.1:{reviews['v1'].inbound}"]
    assert gone.name not in proxy_status_rows(cp) and gone.id not in proxy_status_rows(cp)
    assert tally(client.outbound, "reviews", 40) == {"reviews-v1": 40}


def test_uri_regex_rewrite_rewrites_the_path_and_keeps_the_query(mesh):
    vs = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /service/}}]
    rewrite:
      uriRegexRewrite: {match: '^/service/([^/]+)(/.*)$', rewrite: '\\2/instance/\\1'}
    route: [{destination: {host: reviews, subset: v1}}]
  - route: [{destination: {host: reviews, subset: v1}}]
"""
    cp, client, _ = start_mesh(mesh, {"reviews.yaml": vs}, versions=("v1",))
    c = Client(client.outbound)
    status, _, body = c.get("reviews", "/service/ratings/stars?full=1")
    body = body.decode()
    assert status == 200, body
    assert '"path": "/stars/instance/ratings?full=1"' in body, body
    # A path the pattern does not match is sent as it is; so is a path of another route.
    for path in ["/service/ratings", "/other/x"]:
        status, _, body = c.get("reviews", path)
        assert status == 200 and f'"path": "{path}"' in body.decode(), body


def test_delegate_virtual_service_serves_the_root_routes_and_follows_edits(mesh):
    root = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /v2}}]
    delegate: {name: reviews-v2}
  - route: [{destination: {host: reviews, subset: v1}}]
"""
    delegate = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-v2}
spec:
  http:
  - match: [{uri: {prefix: /v2/jason}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - route: [{destination: {host: reviews, subset: %s}}]
"""
    cp, client, _ = start_mesh(mesh, {"reviews.yaml": root, "delegate.yaml": delegate % "v2"})
    assert tally(client.outbound, "reviews", 10, path="/v2/x") == {"reviews-v2": 10}
    assert tally(client.outbound, "reviews", 10, path="/v2/jason/x") == {"reviews-v1": 10}
    assert tally(client.outbound, "reviews", 10, path="/other") == {"reviews-v1": 10}
    # Editing the delegate alone changes what the root serves.
    cp.apply({"delegate.yaml": delegate % "v1"})
    assert tally(client.outbound, "reviews", 10, path="/v2/x") == {"reviews-v1": 10}


def where(region, zone="z1"):
    """Topology labels for a sidecar in `region`/`zone`."""
    return f"topology.kubernetes.io/region={region},topology.kubernetes.io/zone={zone}"


def test_locality_failover_stays_local_until_the_local_endpoint_is_ejected(mesh):
    rule = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 60s, maxEjectionPercent: 100}
    loadBalancer: {simple: ROUND_ROBIN, localityLbSetting: {enabled: true}}
"""
    cp = ControlPlane(mesh, {"services.yaml": SERVICES, "dr.yaml": rule}).start()
    client = cp.sidecar("client", with_app=False, extra_args=["--labels", f"app=client,{where('us-east', 'z1')}"])
    local = cp.sidecar("reviews", "v1", extra_args=["--labels", f"app=reviews,version=v1,{where('us-east', 'z1')}"])
    cp.sidecar("reviews", "v2", extra_args=["--labels", f"app=reviews,version=v2,{where('us-west', 'z1')}"])
    cp.wait_ready()
    # Both endpoints healthy: every request stays in the client's zone.
    assert tally(client.outbound, "reviews", 40) == {"reviews-v1": 40}
    # The local one fails (its app is gone): ejected, then everything fails over to us-west.
    local.app.stop()
    results = tally(client.outbound, "reviews", 40)
    assert results.get("reviews-v2", 0) >= 37, results
    assert tally(client.outbound, "reviews", 20) == {"reviews-v2": 20}


def test_retry_remote_localities_lets_a_retry_leave_a_failing_local_locality(mesh):
    """Istio's retryRemoteLocalities is Envoy's previous_priorities (update frequency 2): the
    third attempt leaves out the locality the first two tried. Without it, retries stay in the
    local locality as long as its endpoint is not ejected."""
    rule = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 100000, interval: 60s, baseEjectionTime: 60s}
    loadBalancer: {simple: ROUND_ROBIN, localityLbSetting: {enabled: true}}
"""
    routes = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews}}]
    retries: {attempts: 2, retryOn: 5xx%s}
"""
    cp = ControlPlane(mesh, {"services.yaml": SERVICES, "dr.yaml": rule,
                             "vs.yaml": routes % ", retryRemoteLocalities: true"}).start()
    client = cp.sidecar("client", with_app=False, extra_args=["--labels", f"app=client,{where('us-east')}"])
    local = cp.sidecar("reviews", "v1", extra_args=["--labels", f"app=reviews,version=v1,{where('us-east')}"])
    cp.sidecar("reviews", "v2", extra_args=["--labels", f"app=reviews,version=v2,{where('us-west')}"])
    cp.wait_ready()
    assert tally(client.outbound, "reviews", 10) == {"reviews-v1": 10}
    # The local endpoint answers 503 (its app is gone) but is never ejected: the first two
    # attempts go to it, the third to us-west.
    local.app.stop()
    assert tally(client.outbound, "reviews", 20) == {"reviews-v2": 20}
    # Without the flag, every attempt stays local.
    cp.apply({"vs.yaml": routes % ""})
    results = tally(client.outbound, "reviews", 10)
    assert set(results) == {"status 503: "}, results
