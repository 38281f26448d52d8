"""`meshd analyze` as istioctl analyze: several files and directories, Kubernetes objects read
as the registry, `-o log|json|yaml`, output and failure thresholds, exit statuses, analyzers list."""
import json
import subprocess

import yaml

from conftest import MESHD


def meshd(*args):
    return subprocess.run([MESHD, *args], capture_output=True, text=True, timeout=60)


# A Kubernetes application (Service + Deployment) and Istio routing for it, as in Istio's
# analyzer test data: the Service is the registry, the Deployment its workload.
KUBERNETES = """\
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080}
  - {name: weird, port: 9090}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v1}
spec:
  selector: {matchLabels: {app: reviews}}
  template:
    metadata: {labels: {app: reviews, version: v1}}
    spec: {containers: [{name: reviews, image: reviews}]}
"""

ROUTING = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  gateways: [bar]
  http:
  - route: [{destination: {host: reviews, port: {number: 9080}, subset: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}]
"""


def write(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "kube.yaml").write_text(KUBERNETES)
    (tmp_path / "routing.yaml").write_text(ROUTING)
    return str(tmp_path / "app"), str(tmp_path / "routing.yaml")


def test_log_format_with_files_and_directories_and_kubernetes_registry(tmp_path):
    app, routing = write(tmp_path)
    r = meshd("analyze", app, routing)
    assert r.returncode == 79, (r.stdout, r.stderr)
    lines = r.stdout.splitlines()
    # The host and subset resolve through the Kubernetes Service and Deployment: only the gateway is missing.
    # In file order, then line.
    assert lines == [
        f"Info [IST0118] (Service default/reviews {app}/kube.yaml:8) Port name weird (port: 9090, targetPort: 0) "
        "doesn't follow the naming convention of Istio port.",
        f'Error [IST0101] (VirtualService default/reviews {routing}:6) Referenced gateway not found: "bar"',
    ], r.stdout
    assert f"Analyzers found issues when analyzing {app}, {routing}." in r.stderr
    # validate still skips the Kubernetes kinds with a note.
    v = meshd("validate", "-f", app)
    assert "meshd has no Kubernetes API server" in v.stderr


def test_thresholds_and_exit_statuses(tmp_path):
    app, routing = write(tmp_path)
    # Only Errors shown; the exit status is from the unfiltered list.
    r = meshd("analyze", "--output-threshold", "Error", app, routing)
    assert r.returncode == 79
    assert [l.split(" ")[1] for l in r.stdout.splitlines()] == ["[IST0101]"]
    # Nothing at or above the output threshold: the istioctl success line, on stderr.
    (tmp_path / "routing.yaml").write_text(ROUTING.replace("  gateways: [bar]\n", ""))
    r = meshd("analyze", "--output-threshold", "warning", app, routing)
    assert (r.returncode, r.stdout) == (0, ""), r.stdout
    assert r.stderr == f"✔ No validation issues found when analyzing {app}, {routing}.\n"
    # The Info message fails the run when the failure threshold is Info.
    r = meshd("analyze", "--failure-threshold", "Info", app, routing)
    assert r.returncode == 79, r.stdout
    r = meshd("analyze", "--failure-threshold", "Warning", app, routing)
    assert r.returncode == 0, r.stdout
    # A file that is not YAML: exit status 65 (istioctl's FileParseError) when nothing else fails.
    (tmp_path / "broken.yaml").write_text("kind: [unclosed\n")
    r = meshd("analyze", app, routing, str(tmp_path / "broken.yaml"))
    assert r.returncode == 65, (r.stdout, r.stderr)
    assert "Error(s) adding files" in r.stderr
    # Bad options are usage errors.
    assert meshd("analyze", "--output-threshold", "Fatal", app).returncode == 64
    assert meshd("analyze", "-o", "xml", app).returncode == 64


def test_json_and_yaml_formats(tmp_path):
    app, routing = write(tmp_path)
    r = meshd("analyze", "-o", "json", app, routing)
    # As istioctl: only the log format sets the exit status.
    assert r.returncode == 0, r.stderr
    messages = json.loads(r.stdout)
    assert messages[1] == {
        "code": "IST0101", "level": "Error", "message": 'Referenced gateway not found: "bar"',
        "origin": "VirtualService default/reviews", "reference": f"{routing}:6", "path": "spec.gateways[0]",
        "documentationUrl": "https://istio.io/latest/docs/reference/config/analysis/ist0101/",
    }
    assert [m["code"] for m in messages] == ["IST0118", "IST0101"]
    r = meshd("analyze", "-o", "yaml", "--output-threshold", "Error", app, routing)
    assert r.returncode == 0, r.stderr
    assert [m["code"] for m in yaml.safe_load(r.stdout)] == ["IST0101"]


def test_list_analyzers():
    r = meshd("analyze", "--list-analyzers")
    assert r.returncode == 0, r.stderr
    assert "* virtualservice.GatewayAnalyzer:\n    Checks the gateways associated with each virtual service\n" in r.stdout
    names = [l[2:-1] for l in r.stdout.splitlines() if l.startswith("* ")]
    assert names == sorted(names) and len(names) >= 20
