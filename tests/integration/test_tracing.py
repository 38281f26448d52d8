"""Tracing through the mesh: trace context (W3C and B3) followed over a three-hop chain
(client sidecar -> productpage sidecar -> productpage app -> its sidecar -> reviews sidecar ->
reviews app), spans exported over OTLP/HTTP to a receiver here that decodes them with the
official opentelemetry-proto definitions, and no request failing while the collector is away."""
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (ExportTraceServiceRequest,
                                                                      ExportTraceServiceResponse)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from conftest import free_port
from mesh_harness import Client, ControlPlane, service_entry, wait_until

SERVICES = service_entry("productpage") + "---" + service_entry("reviews")
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


class OTLPReceiver:
    """POST /v1/traces: decodes each ExportTraceServiceRequest and keeps (resource attrs, span)."""

    def __init__(self):
        self.spans = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                assert self.path == "/v1/traces" and self.headers["content-type"] == "application/x-protobuf"
                with receiver.lock:
                    for rs in request.resource_spans:
                        resource = {a.key: a.value.string_value for a in rs.resource.attributes}
                        for ss in rs.scope_spans:
                            receiver.spans.extend((resource, s) for s in ss.spans)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def trace(self, trace_id):
        with self.lock:
            return [(r, s) for r, s in self.spans if s.trace_id.hex() == trace_id]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def tags(span):
    return {a.key: a.value.string_value for a in span.attributes}


def start_chain(mesh, collector):
    args = ["--tracing-collector", f"127.0.0.1:{collector}", "--tracing-sampling", "100"]
    cp = ControlPlane(mesh, {"services.yaml": SERVICES})
    cp.start()
    client = cp.sidecar("client", "v1", with_app=False, extra_args=args)
    cp.sidecar("productpage", "v1", extra_args=args, app_args=["--calls", "reviews"])
    cp.sidecar("reviews", "v1", extra_args=args)
    cp.wait_ready()
    return cp, client


def leaf_headers(body):
    """The headers the reviews app received, from productpage's answer."""
    answer = json.loads(body)
    assert answer["service"] == "productpage-v1", answer
    call = answer["calls"]["reviews"]
    assert call["status"] == 200, call
    return call["body"]["headers"]


def test_trace_followed_through_three_hops(mesh):
    receiver = OTLPReceiver()
    try:
        cp, client = start_chain(mesh, receiver.port)
        c = Client(client.outbound, timeout=10)

        # No trace context: the first sidecar starts one, every hop keeps it.
        status, _, body = c.get("productpage", headers={"x-request-id": "req-fresh"})
        assert status == 200, body
        leaf = leaf_headers(body)
        assert leaf["x-request-id"] == "req-fresh"
        version, trace_id, leaf_parent, flags = leaf["traceparent"].split("-")
        assert (version, flags) == ("00", "01") and len(trace_id) == 32
        assert leaf["x-b3-traceid"] == trace_id and leaf["x-b3-spanid"] == leaf_parent
        assert leaf["x-b3-sampled"] == "1"

        # Four spans (client and server at both sidecar hops) chained parent to child.
        spans = wait_until(lambda: (lambda s: s if len(s) >= 4 else None)(receiver.trace(trace_id)),
                           timeout=30, what="4 spans of the fresh trace")
        assert len(spans) == 4, spans
        by_parent = {s.parent_span_id.hex(): (r, s) for r, s in spans}
        chain, parent = [], ""
        for _ in range(4):
            resource, span = by_parent[parent]
            chain.append((resource, span))
            parent = span.span_id.hex()
        assert parent == leaf_parent, "the reviews app's traceparent names the last hop's span"
        kinds = [s.kind for _, s in chain]
        assert kinds == [Span.SPAN_KIND_CLIENT, Span.SPAN_KIND_SERVER, Span.SPAN_KIND_CLIENT, Span.SPAN_KIND_SERVER]
        services = [tags(s)["istio.canonical_service"] for _, s in chain]
        assert services == ["client", "productpage", "productpage", "reviews"]
        assert [r["service.name"] for r, _ in chain] == [f"{s}.default" for s in services]
        for _, span in chain:
            t = tags(span)
            assert t["guid:x-request-id"] == "req-fresh"
            assert t["http.status_code"] == "200" and t["http.method"] == "GET"
            assert t["istio.mesh_id"] == "cluster.local" and t["istio.namespace"] == "default"
            assert t["component"] == "proxy" and t["node_id"].startswith("sidecar~127.0.0.1~")
            assert t["response_flags"] == "-" and t["upstream_cluster"] != "-"
            assert t["peer.address"] == "127.0.0.1"
            assert t["http.url"].startswith("http://") and span.end_time_unix_nano >= span.start_time_unix_nano > 0
        assert tags(chain[0][1])["upstream_cluster"].startswith("outbound|9080||productpage")
        assert tags(chain[1][1])["upstream_cluster"].startswith("inbound|")

        # A caller's W3C context: its trace id is kept, its span is the first hop's parent.
        status, _, body = c.get("productpage", headers={"traceparent": f"00-{TRACE}-{CALLER_SPAN}-01",
                                                         "tracestate": "vendor=kept"})
        leaf = leaf_headers(body)
        assert leaf["traceparent"].startswith(f"00-{TRACE}-") and leaf["tracestate"] == "vendor=kept"
        first = wait_until(lambda: [s for _, s in receiver.trace(TRACE) if s.parent_span_id.hex() == CALLER_SPAN],
                           timeout=30, what="span under the caller's")
        assert first[0].trace_state == "vendor=kept"

        # B3 multi-header context, 64-bit trace id, not sampled: kept and honoured.
        status, _, body = c.get("productpage", headers={"x-b3-traceid": "a3ce929d0e0e4736",
                                                         "x-b3-spanid": CALLER_SPAN, "x-b3-sampled": "0"})
        leaf = leaf_headers(body)
        assert leaf["x-b3-traceid"] == "a3ce929d0e0e4736" and leaf["x-b3-sampled"] == "0"
        assert leaf["traceparent"].startswith("00-0000000000000000a3ce929d0e0e4736-") and leaf["traceparent"].endswith("-00")

        # A huge or malformed traceparent is replaced, never propagated.
        for bad in ["00-" + "f" * 6000, f"00-{TRACE.upper()}-{CALLER_SPAN}-01"]:
            status, _, body = c.get("productpage", headers={"traceparent": bad, "tracestate": "evil=1"})
            assert status == 200, body
            leaf = leaf_headers(body)
            version, trace_id, _, _ = leaf["traceparent"].split("-")
            assert version == "00" and trace_id not in (TRACE, TRACE.upper()) and len(leaf["traceparent"]) == 55
            assert "tracestate" not in leaf
        c.close()
    finally:
        receiver.close()


def test_collector_away_fails_no_request(mesh):
    """A collector that accepts connections but never answers: every request still succeeds
    promptly, and the spans that could not be delivered are counted as dropped."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # never accepted: connects complete from the backlog, then nothing answers
    try:
        cp, client = start_chain(mesh, silent.getsockname()[1])
        c = Client(client.outbound, timeout=10)
        for i in range(40):
            status, _, body = c.get("productpage", headers={"x-request-id": f"away-{i}"})
            assert status == 200, (i, body)
        c.close()

        def dropped():
            status, text = http_admin(client.admin, "/stats/prometheus")
            for line in text.splitlines():
                if line.startswith("meshd_tracing_spans_dropped_total "):
                    return int(line.split()[1])
            return 0
        assert wait_until(dropped, timeout=30, what="dropped spans counted") >= 1
    finally:
        silent.close()


def http_admin(port, path):
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.status, r.read().decode()


SPAN_TAG_PLUGIN = """
apiVersion: extensions.meshd.io/v1alpha1
kind: LuaPlugin
metadata: {name: span-tags}
spec:
  selector: {matchLabels: {app: client}}
  inline: |
    function envoy_on_request(h)
      h:span():setTag("plugin.user", h:headers():get("x-user") or "anonymous")
    end
"""


def test_a_lua_plugin_tags_the_span_its_hop_reports(mesh):
    receiver = OTLPReceiver()
    try:
        cp, client = start_chain(mesh, receiver.port)
        cp.apply({"span-tags.yaml": SPAN_TAG_PLUGIN}, changed=[client.id])
        status, _, body = Client(client.outbound, timeout=10).get("productpage", headers={"x-user": "jason"})
        assert status == 200, body
        trace_id = leaf_headers(body)["traceparent"].split("-")[1]
        spans = wait_until(lambda: (lambda s: s if len(s) >= 4 else None)(receiver.trace(trace_id)),
                           timeout=30, what="4 spans of the trace")
        tagged = [tags(s)["istio.canonical_service"] for _, s in spans if tags(s).get("plugin.user") == "jason"]
        assert tagged == ["client"], [tags(s) for _, s in spans]
    finally:
        receiver.close()
