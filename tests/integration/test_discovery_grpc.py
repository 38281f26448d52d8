"""A stock gRPC client (python grpcio, stubs generated from discovery.proto at test time)
subscribes to `meshd control-plane`, ACKs, NACKs, and sees the status endpoint follow."""
import json
import os
import queue
import subprocess
import sys
import threading

import grpc
import pytest

from conftest import MESHD, ROOT, free_port, wait_for_port
from mesh_harness import service_entry, syncz, wait_until

PROTO_DIR = os.path.join(ROOT, "Sources", "MeshAPI", "proto")

SERVICE = service_entry("reviews")


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    out = tmp_path_factory.mktemp("stubs")
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO_DIR}", f"--python_out={out}",
                    f"--grpc_python_out={out}", "discovery.proto"], check=True)
    sys.path.insert(0, str(out))
    import discovery_pb2
    import discovery_pb2_grpc
    return discovery_pb2, discovery_pb2_grpc


def test_stock_grpc_client_subscribes_acks_and_nacks(mesh, tmp_path, stubs):
    pb, pb_grpc = stubs
    config = tmp_path / "config"
    config.mkdir()
    (config / "services.yaml").write_text(SERVICE)
    discovery, status = free_port(), free_port()
    mesh.start([MESHD, "control-plane", "--config-dir", str(config), "--discovery-port", str(discovery),
                "--status-port", str(status), "--debounce-ms", "50"], "control-plane")
    wait_for_port(discovery)
    wait_for_port(status)

    requests = queue.Queue()
    node = pb.Node(id="sidecar~127.0.0.1~test.default", kind="sidecar", name="test", namespace="default",
                   labels={"app": "reviews", "version": "v1"}, address="127.0.0.1", inbound_port=free_port(),
                   outbound_port=free_port(), app_port=free_port())
    requests.put(pb.DiscoveryRequest(node=node, type_url="type.meshd.io/meshd.Resources"))

    def request_iterator():
        while True:
            item = requests.get()
            if item is None:
                return
            yield item

    with grpc.insecure_channel(f"127.0.0.1:{discovery}") as channel:
        stub = pb_grpc.AggregatedDiscoveryServiceStub(channel)
        responses = stub.StreamResources(request_iterator(), timeout=30)
        first = next(responses)
        names = [r.name for r in first.resources]
        assert not first.incremental
        assert any(n.startswith("listener/") for n in names), names
        assert any(n.startswith("cluster/") and "reviews" in n for n in names), names
        body = json.loads(next(r for r in first.resources if r.name.startswith("listener/")).body)
        assert body["port"] in (node.inbound_port, node.outbound_port)
        assert wait_until(lambda: [p for p in syncz(status) if p["id"] == node.id])[0]["status"] == "STALE"
        requests.put(pb.DiscoveryRequest(node=node, version_info=first.version_info, response_nonce=first.nonce))
        wait_until(lambda: syncz(status)[0]["status"] == "SYNCED")

        # A config change is pushed incrementally; refusing it shows as NACK with the reason.
        (config / "more.yaml").write_text(service_entry("ratings"))
        second = next(responses)
        assert second.incremental
        assert any("ratings" in r.name for r in second.resources)
        requests.put(pb.DiscoveryRequest(node=node, version_info=first.version_info, response_nonce=second.nonce,
                                         error_detail=pb.Status(code=3, message="test refuses this")))
        row = wait_until(lambda: [p for p in syncz(status) if p["status"] == "NACK"])[0]
        assert row["nackReason"] == "test refuses this"
        requests.put(None)


def test_sidecar_and_grpc_client_over_tls_discovery(mesh, tmp_path, stubs):
    from certs import make_certs
    pb, pb_grpc = stubs
    certs = make_certs(str(tmp_path))
    config = tmp_path / "config"
    config.mkdir()
    (config / "services.yaml").write_text(SERVICE)
    plain, secure, status = free_port(), free_port(), free_port()
    mesh.start([MESHD, "control-plane", "--config-dir", str(config), "--discovery-port", str(plain),
                "--tls-port", str(secure), "--tls-cert", certs["cert"], "--tls-key", certs["key"],
                "--status-port", str(status), "--debounce-ms", "50"], "control-plane")
    wait_for_port(secure)
    wait_for_port(status)  # bound just after the discovery ports
    outbound = free_port()
    mesh.start([MESHD, "sidecar", "--control-plane", f"localhost:{secure}", "--control-plane-ca", certs["ca"],
                "--name", "reviews-v1", "--labels", "app=reviews,version=v1", "--app-port", str(free_port()),
                "--inbound-port", str(free_port()), "--outbound-port", str(outbound), "--admin-port", str(free_port()),
                "--concurrency", "1"], "sidecar")
    row = wait_until(lambda: [p for p in syncz(status) if p["status"] == "SYNCED"])[0]
    assert row["name"] == "reviews-v1"
    wait_for_port(outbound)
    # A stock grpcio client verifies the control plane's certificate too.
    creds = grpc.ssl_channel_credentials(root_certificates=open(certs["ca"], "rb").read())
    with grpc.secure_channel(f"localhost:{secure}", creds) as channel:
        stub = pb_grpc.AggregatedDiscoveryServiceStub(channel)
        node = pb.Node(id="sidecar~127.0.0.1~tls.default", kind="sidecar", name="tls", namespace="default",
                       labels={"app": "ratings"}, address="127.0.0.1", inbound_port=free_port(), outbound_port=free_port())
        done = threading.Event()

        def requests():
            yield pb.DiscoveryRequest(node=node)
            done.wait(20)  # a subscriber keeps its side of the stream open

        first = next(stub.StreamResources(requests(), timeout=20))
        done.set()
        assert any(r.name.startswith("cluster/") for r in first.resources)
