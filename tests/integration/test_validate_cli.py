"""`meshd validate` and `meshd analyze` on Istio's samples and on broken files."""
import os
import re
import subprocess

import pytest

from conftest import MESHD

# Istio's sample files (not part of this repository): the directory MESHD_ISTIO_SAMPLES names.
SAMPLES = os.environ.get("MESHD_ISTIO_SAMPLES", "")
needs_samples = pytest.mark.skipif(not SAMPLES or not os.path.isdir(SAMPLES),
                                   reason="Istio samples not available (set MESHD_ISTIO_SAMPLES)")


def meshd(*args):
    return subprocess.run([MESHD, *args], capture_output=True, text=True, timeout=60)


def sample_files():
    return sorted(os.path.join(SAMPLES, f) for f in os.listdir(SAMPLES) if f.endswith(".yaml"))


@needs_samples
def test_validate_accepts_every_sample():
    args = sum((["-f", f] for f in sample_files()), [])
    r = meshd("validate", *args)
    assert r.returncode == 0, r.stderr
    # Valid; what meshd does not enforce is warned. ISTIO_MUTUAL and TCP routes are enforced
    # now (mesh CA, tcp_proxy listeners), so the samples that use them get no such warning.
    assert re.fullmatch(r"✔ \d+ resources valid(, \d+ warnings?)?", r.stdout.strip()), r.stdout
    assert "ISTIO_MUTUAL" not in r.stderr, r.stderr
    assert "spec.tcp:" not in r.stderr, r.stderr
    r = meshd("validate", "-f", SAMPLES)
    assert r.returncode == 0, r.stderr


def test_validate_reports_file_line_resource_and_path(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("""\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - match:
    - uri: {regex: "/v[0-9"}
    route:
    - {destination: {host: reviews, subset: v1}, weight: 70}
    - {destination: {host: reviews, subset: v2}, weight: 20, extra: true}
---
apiVersion: networking.istio.io/v1
kind: Telemetry2
metadata: {name: t}
spec: {}
""")
    r = meshd("validate", "-f", str(bad))
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    # Each error names the offending field's own line (weights 70/20 are fine: Istio only
    # needs a positive total, and splits in proportion).
    assert f"{bad}:18: VirtualService/shop/reviews: spec.http[0].route[1].extra: unknown field \"extra\"" in lines
    assert any(l.startswith(f"{bad}:15: VirtualService/shop/reviews: spec.http[0].match[0].uri.regex: invalid regex") for l in lines)
    assert any(l.startswith(f"{bad}:21: Telemetry2/default/t: kind: unknown kind \"Telemetry2\"") for l in lines)
    assert lines[-1].startswith("✘ 3 errors"), lines

    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: v1\nkind: [unclosed\n")
    r = meshd("validate", "-f", str(broken))
    assert r.returncode == 1
    assert r.stderr.startswith(f"{broken}:3: invalid YAML: ")


def test_validate_warns_about_what_it_does_not_enforce_and_strict_fails_on_it(tmp_path):
    f = tmp_path / "mixed.yaml"
    f.write_text("""\
apiVersion: apps/v1
kind: Deployment
metadata: {name: ratings-v1}
spec: {replicas: 1}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  http:
  - match: [{uri: {prefix: /}, statPrefix: ratings}]
    route:
    - destination: {host: ratings}
      weight: 33
    - destination: {host: ratings-v2}
      weight: 33
""")
    r = meshd("validate", "-f", str(f))
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert any(l.startswith(f"{f}:2: warning: Deployment/default/ratings-v1: kind: meshd has no Kubernetes API server") for l in lines), lines
    assert (f"{f}:12: warning: VirtualService/default/ratings: spec.http[0].match[0].statPrefix: "
            "stats are not kept per match; ignored") in lines
    assert r.stdout.strip() == "✔ 1 resources valid, 2 warnings"

    r = meshd("validate", "--strict", "-f", str(f))
    assert r.returncode == 1
    assert "--strict: 2 warnings count as failures" in r.stderr

    # Without warnings, --strict passes.
    f.write_text("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n"
                 "spec: {hosts: [r], http: [{route: [{destination: {host: r}}]}]}\n")
    r = meshd("validate", "--strict", "-f", str(f))
    assert (r.returncode, r.stderr) == (0, ""), r.stderr


@needs_samples
def test_analyze_finds_what_the_samples_leave_undefined(tmp_path):
    r = meshd("analyze", SAMPLES)
    # istioctl's exit status when analyzers found an Error (AnalyzerFoundIssuesError).
    assert r.returncode == 79, r.stderr
    assert re.search(r'^Error \[IST0101\] \(VirtualService default/bookinfo \S+/bookinfo-gateway.yaml:\d+\) '
                     r'Referenced host not found: "productpage"$', r.stdout, re.M), r.stdout
    # Two sample Gateways serve every host on port 80 of one ingress workload.
    assert re.search(r"^Error \[IST0145\] \(Gateway default/httpbin-gateway \S+/httpbin-gateway.yaml:\d+\) "
                     r"Conflict with gateways istio-system/cert-manager-gateway \(workload selector istio=ingressgateway, "
                     r"port 80, hosts \*\)\.$", r.stdout, re.M), r.stdout
    assert "Analyzers found issues when analyzing" in r.stderr

    # With the services defined, bookinfo's gateway and routing analyze clean of errors.
    (tmp_path / "services.yaml").write_text("""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: bookinfo}
spec:
  hosts: [productpage, reviews, ratings, details]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {mesh: bookinfo}}
""")
    for f in ["bookinfo-gateway.yaml", "destination-rule-all.yaml", "virtual-service-reviews-80-20.yaml"]:
        with open(os.path.join(SAMPLES, f)) as src:
            (tmp_path / f).write_text(src.read())
    r = meshd("analyze", str(tmp_path))
    assert r.returncode == 0, r.stdout
    assert "Error" not in r.stdout


def test_analyze_reports_missing_references(tmp_path):
    (tmp_path / "a.yaml").write_text("""\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: unused}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: extensions.meshd.io/v1alpha1
kind: LuaPlugin
metadata: {name: p}
spec:
  targetRefs: [{kind: VirtualService, name: nope}]
  inline: "function envoy_on_request(h) end"
""")
    r = meshd("analyze", str(tmp_path))
    assert r.returncode == 79
    out = r.stdout.splitlines()
    assert f"Warning [MSH0004] (Gateway default/unused {tmp_path}/a.yaml:1) no VirtualService binds this Gateway" in out
    assert (f"Error [IST0101] (LuaPlugin default/p {tmp_path}/a.yaml:12) "
            'Referenced target VirtualService not found: "default/nope"') in out
