"""The meshd CLI as istioctl users expect it: proxy-status per resource type and for one proxy,
proxy-config with singular kinds and istioctl's filters, -o json|yaml, version, "did you mean"
for verbs and config fields, and exit codes (64 for usage, 1 with one `error:` line for runtime
failures)."""
import json
import re
import subprocess

import yaml

from conftest import MESHD, free_port
from mesh_harness import ControlPlane, service_entry
from test_mesh import DESTINATION_RULES

HOST = "reviews.default.svc.cluster.local"
TYPES = ["CDS", "LDS", "EDS", "RDS", "ECDS"]


def run(*args, timeout=30):
    return subprocess.run([MESHD, *args], capture_output=True, text=True, timeout=timeout)


def small_mesh(mesh):
    """A control plane, a client sidecar and reviews-v1 behind its sidecar, converged."""
    cp = ControlPlane(mesh, {"services.yaml": service_entry("reviews"), "dr.yaml": DESTINATION_RULES})
    cp.start()
    client = cp.sidecar("client", "v1", with_app=False)
    reviews = cp.sidecar("reviews", "v1")
    cp.wait_ready()
    return cp, client, reviews


def cli(cp, *args):
    """meshd against this control plane; returns the finished process (not checked)."""
    return run(*args, "--control-plane-status", f"127.0.0.1:{cp.status_port}")


def columns(text):
    """A table's rows as dicts by header (columns are two or more spaces apart)."""
    lines = text.strip().splitlines()
    header = re.split(r"\s{2,}", lines[0].strip())
    return header, [dict(zip(header, re.split(r"\s{2,}", line.strip()))) for line in lines[1:]]


def client_version():
    r = run("version", "--short")
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


# -- usage: did you mean, exit 64

def test_misspelled_verb_gets_a_suggestion_and_exit_64():
    r = run("proxy-stauts")
    assert r.returncode == 64, r
    assert 'unknown command "proxy-stauts" for "meshd"' in r.stderr, r.stderr
    assert re.search(r"Did you mean this\?\n\tproxy-status\n", r.stderr), r.stderr
    # A nested verb, and a word near nothing: no suggestion, still a usage error.
    r = run("plugin", "tset")
    assert r.returncode == 64 and re.search(r"Did you mean this\?\n\ttest\n", r.stderr), r
    r = run("frobnicate")
    assert r.returncode == 64 and "unknown command \"frobnicate\"" in r.stderr and "Did you mean" not in r.stderr, r


def test_bad_kind_or_filter_is_a_usage_error():
    r = run("proxy-config", "clustr", "client-v1")
    assert r.returncode == 64, r
    assert 'unknown kind "clustr" (did you mean "cluster"?)' in r.stderr, r.stderr
    # A filter the kind has no field for is refused, not ignored.
    r = run("proxy-config", "listener", "client-v1", "--subset", "v1")
    assert r.returncode == 64 and "--subset does not apply to listeners" in r.stderr, r
    r = run("proxy-status", "-o", "xml")
    assert r.returncode == 64, r


# -- runtime failures: exit 1, one line naming the cause

def test_unreachable_control_plane_is_one_line_and_exit_1():
    port = free_port()  # nothing listens there
    for args in (["proxy-status"], ["proxy-status", "client-v1"], ["proxy-config", "cluster", "client-v1"]):
        r = run(*args, "--control-plane-status", f"127.0.0.1:{port}")
        assert r.returncode == 1, (args, r)
        assert r.stderr == f"error: cannot reach the control plane at 127.0.0.1:{port}: connection refused\n", (args, r.stderr)
        assert "Usage" not in r.stderr + r.stdout
    r = run("proxy-config", "listeners", f"127.0.0.1:{port}")
    assert r.returncode == 1 and r.stderr == \
        f"error: cannot reach the proxy's admin endpoint at 127.0.0.1:{port}: connection refused\n", r


# -- validate: did you mean for fields, -o json|yaml

def test_validate_suggests_the_misspelled_field_and_prints_json_or_yaml(tmp_path):
    f = tmp_path / "vs.yaml"
    f.write_text("""\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
      wieght: 100
""")
    r = run("validate", "-f", str(f))
    assert r.returncode == 1, r
    assert re.search(r'vs\.yaml:9: VirtualService/default/reviews: spec\.http\[0\]\.route\[0\]\.wieght: '
                     r'unknown field "wieght" \(did you mean "weight"\?\)', r.stderr), r.stderr
    r = run("validate", "-f", str(f), "-o", "json")
    assert r.returncode == 1, r
    doc = json.loads(r.stdout)
    assert doc["valid"] is False and doc["resources"] == 1, doc
    [error] = doc["errors"]
    assert error["line"] == 9 and error["path"] == "spec.http[0].route[0].wieght", error
    assert error["reason"] == 'unknown field "wieght" (did you mean "weight"?)', error
    r = run("validate", "-f", str(f), "-o", "yaml")
    assert r.returncode == 1 and yaml.safe_load(r.stdout) == doc, r.stdout


# -- version

def test_version_without_a_control_plane():
    version = client_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", version), version
    port = free_port()
    r = run("version", "--control-plane-status", f"127.0.0.1:{port}")
    assert r.returncode == 0, r
    assert r.stdout == f"client version: {version}\n", r.stdout
    assert f"cannot reach the control plane at 127.0.0.1:{port}: connection refused" in r.stderr, r.stderr


def test_version_of_a_running_control_plane_and_its_proxies(mesh):
    cp, client, reviews = small_mesh(mesh)
    version = client_version()
    r = cli(cp, "version")
    assert r.returncode == 0, r
    assert r.stdout.splitlines() == [f"client version: {version}", f"control plane version: {version}",
                                     f"data plane version: {version} (2 proxies)"], r.stdout
    r = cli(cp, "version", "-o", "json")
    doc = json.loads(r.stdout)
    assert doc["clientVersion"]["version"] == version and doc["controlPlaneVersion"]["version"] == version, doc
    assert sorted(p["id"] for p in doc["dataPlaneVersion"]) == sorted([client.id, reviews.id]), doc
    assert yaml.safe_load(cli(cp, "version", "-o", "yaml").stdout) == doc


# -- proxy-status

def test_proxy_status_per_type_and_one_proxy_in_detail(mesh):
    cp, client, reviews = small_mesh(mesh)
    version = client_version()
    r = cli(cp, "proxy-status")
    assert r.returncode == 0, r
    header, rows = columns(r.stdout)
    assert header == ["NAME", "KIND", *TYPES, "VERSION", "WARNINGS", "REASON"], header
    by_id = {row["NAME"]: row for row in rows}
    assert sorted(by_id) == sorted([client.id, reviews.id]), rows
    for row in rows:
        # No plugins in this mesh: nothing sent for ECDS.
        assert [row[t] for t in TYPES] == ["SYNCED"] * 4 + ["NOT SENT"], row
        assert row["VERSION"] == version and row["WARNINGS"] == "0", row

    # The versions are 16 hex digits, every time (no leading zero dropped).
    for row in cp.syncz():
        assert re.fullmatch(r"[0-9a-f]{16}", row["sentVersion"]) and row["ackedVersion"] == row["sentVersion"], row
        for t in row["resources"]:
            assert t["sent"] == "" or re.fullmatch(r"[0-9a-f]{16}", t["sent"]), t

    # One proxy, by name: what was sent and acknowledged, per type.
    r = cli(cp, "proxy-status", "client-v1")
    assert r.returncode == 0, r
    text = r.stdout
    sent = {row["id"]: row for row in cp.syncz()}[client.id]["sentVersion"]
    assert re.search(rf"^Proxy:\s+{re.escape(client.id)}$", text, re.M), text
    assert re.search(rf"^Sent version:\s+{sent}$", text, re.M) and re.search(rf"^Acked version:\s+{sent}$", text, re.M), text
    detail_header, detail = columns(text.split("\n\n")[1])
    assert detail_header == ["TYPE", "STATUS", "SENT", "ACKED"], detail_header
    assert [(d["TYPE"], d["STATUS"]) for d in detail] == list(zip(TYPES, ["SYNCED"] * 4 + ["NOT SENT"])), detail
    assert all(d["SENT"] == d["ACKED"] and re.fullmatch(r"[0-9a-f]{16}", d["SENT"]) for d in detail[:4]), detail

    # The same as JSON and YAML; by name.namespace and by id too.
    doc = json.loads(cli(cp, "proxy-status", "client-v1", "-o", "json").stdout)
    assert doc["id"] == client.id and doc["status"] == "SYNCED" and doc["proxyVersion"] == version, doc
    assert [t["type"] for t in doc["resources"]] == TYPES
    assert yaml.safe_load(cli(cp, "proxy-status", "client-v1.default", "-o", "yaml").stdout)["id"] == client.id
    assert json.loads(cli(cp, "proxy-status", client.id, "--json").stdout)["id"] == client.id
    every = yaml.safe_load(cli(cp, "proxy-status", "-o", "yaml").stdout)
    assert sorted(p["id"] for p in every) == sorted([client.id, reviews.id]), every

    # An unknown proxy: exit 1, one line with the names it could have been.
    r = cli(cp, "proxy-status", "clinet-v1")
    assert r.returncode == 1, r
    assert r.stderr == 'error: no proxy named "clinet-v1" (did you mean "client-v1"? known: client-v1, reviews-v1)\n', r.stderr
    r = cli(cp, "proxy-config", "cluster", "nosuch")
    assert r.returncode == 1 and r.stderr == 'error: no proxy named "nosuch" (known: client-v1, reviews-v1)\n', r.stderr


# -- proxy-config

def test_proxy_config_singular_kinds_filters_and_formats(mesh):
    cp, client, reviews = small_mesh(mesh)
    outbound = {f"outbound|9080||{HOST}", *(f"outbound|9080|{v}|{HOST}" for v in ("v1", "v2", "v3"))}

    def names(*args):
        r = cli(cp, "proxy-config", *args)
        assert r.returncode == 0, (args, r.stderr)
        return {row[0] for row in (re.split(r"\s{2,}", line.strip()) for line in r.stdout.strip().splitlines()[1:])}

    # Singular, plural and short kinds print the same.
    for plural, others in [("clusters", ["cluster", "c"]), ("listeners", ["listener", "l"]), ("routes", ["route", "r"]),
                           ("endpoints", ["endpoint", "ep"])]:
        want = cli(cp, "proxy-config", plural, "client-v1").stdout
        for kind in others:
            assert cli(cp, "proxy-config", kind, "client-v1").stdout == want, kind
    assert outbound <= names("cluster", "client-v1")

    # istioctl's filters on clusters: fqdn and subset are substrings, port and direction exact.
    assert names("cluster", "client-v1", "--fqdn", "reviews") == outbound
    assert names("cluster", "client-v1", "--fqdn", HOST, "--subset", "v1") == {f"outbound|9080|v1|{HOST}"}
    assert names("cluster", "client-v1", "--port", "9080", "--direction", "outbound") == outbound
    assert names("cluster", "reviews-v1", "--direction", "inbound") == {f"inbound|{reviews.app_port}||"}
    assert names("cluster", "client-v1", "--port", "1") == set()
    # Endpoints by their cluster, with the health column.
    r = cli(cp, "proxy-config", "endpoint", "client-v1", "--subset", "v1", "-o", "json")
    assert json.loads(r.stdout) == [{"cluster": f"outbound|9080|v1|{HOST}", "endpoint": f"127.0.0.1:{reviews.inbound}",
                                     "status": "HEALTHY"}], r.stdout
    header, rows = columns(cli(cp, "proxy-config", "endpoint", "client-v1", "--fqdn", HOST, "--subset", "v1").stdout)
    assert header == ["ENDPOINT", "STATUS", "CLUSTER"] and rows == [
        {"ENDPOINT": f"127.0.0.1:{reviews.inbound}", "STATUS": "HEALTHY", "CLUSTER": f"outbound|9080|v1|{HOST}"}], rows
    # Listeners by direction and port; routes by direction.
    assert names("listener", "client-v1", "--direction", "outbound") == {"outbound"}
    assert names("listener", "client-v1", "--port", str(client.inbound)) == {"inbound"}
    assert names("route", "client-v1", "--direction", "inbound") == {"inbound"}

    # -o json and -o yaml: the same (filtered) objects.
    doc = json.loads(cli(cp, "proxy-config", "cluster", "client-v1", "--subset", "v2", "-o", "json").stdout)
    assert [c["name"] for c in doc] == [f"outbound|9080|v2|{HOST}"], doc
    assert yaml.safe_load(cli(cp, "proxy-config", "clusters", "client-v1", "--subset", "v2", "-o", "yaml").stdout) == doc
    listeners = json.loads(cli(cp, "proxy-config", "listeners", "client-v1", "--json").stdout)
    assert yaml.safe_load(cli(cp, "proxy-config", "listener", "client-v1", "-o", "yaml").stdout) == listeners
