#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (Fuzz/corpus/<target>/) from the repository's own
test inputs: YAML blocks of the Swift tests, the examples, the HTTP/2 frames the integration
tests build. Run from the repository root; the output is committed, so rerun only when the
tests' inputs change."""
import hashlib
import json
import os
import re
import sys

sys.path.insert(0, "tests/integration")
import h2frames as h2  # noqa: E402

OUT = "Fuzz/corpus"


def write(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()[:16]), "wb") as f:
        f.write(data)


def swift_blocks(path):
    """The multi-line string literals of a Swift file, de-indented as Swift does."""
    text = open(path).read()
    for m in re.finditer(r'"""\n(.*?)\n([ \t]*)"""', text, re.S):
        indent = m.group(2)
        lines = [ln[len(indent):] if ln.startswith(indent) else ln.lstrip() for ln in m.group(1).split("\n")]
        yield "\n".join(lines) + "\n"


def test_files(folder):
    return [os.path.join(folder, f) for f in sorted(os.listdir(folder)) if f.endswith(".swift")]


# Istio resources: the control plane tests' YAML and the bookinfo example.
for path in test_files("Tests/ControlPlaneTests"):
    for block in swift_blocks(path):
        if "kind:" in block:
            write("istio", block)
for name in sorted(os.listdir("examples/bookinfo")):
    if name.endswith(".yaml"):
        write("istio", open(os.path.join("examples/bookinfo", name)).read())

# Bootstraps: the tests' YAML that has listeners or clusters, the proxy demo's file.
for folder in ("Tests/FilterHostTests", "Tests/FiltersTests"):
    for path in test_files(folder):
        for block in swift_blocks(path):
            if re.search(r"^(listeners|clusters|routeConfigs|luaPlugins):", block, re.M):
                write("bootstrap", block)
write("bootstrap", open("examples/proxy-demo/bootstrap.yaml").read())
write("bootstrap", json.dumps({
    "listeners": [{"name": "main", "address": "127.0.0.1", "port": 8080, "routeConfig": "rc",
                   "httpFilters": [{"name": "meshd.lua", "config": {"inlineCode": "function envoy_on_request(h) end"}}]}],
    "routeConfigs": [{"name": "rc", "virtualHosts": [{"name": "all", "domains": ["*"], "routes": [
        {"name": "regex", "match": {"safeRegex": "/items/[0-9]+"}, "route": {"cluster": "a", "prefixRewrite": "/x/"}},
        {"name": "direct", "match": {"prefix": "/"}, "directResponse": {"status": 418, "body": "teapot"}}]}]}],
    "clusters": [{"name": "a", "connectTimeoutMs": 1000, "endpoints": [{"address": "127.0.0.1", "port": 9000}]}]}))

# HTTP/1: first byte 0x00 = server side, all at once; 0x09 = server, 1-byte reads;
# 0x01 = client side (GET), 0x03 = client (HEAD), 0x05 = client (POST).
requests = [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /items/42 HTTP/1.1\r\nHost: items.test\r\nx-canary: 1\r\n\r\nGET / HTTP/1.1\r\nHost: y\r\n\r\n",
    b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nx-t: 1\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
    b"GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nraw bytes",
    b"GET / HTTP/1.1\r\nHost: x\r\nx-respond: 1\r\nx-drop: 1\r\n\r\n",
    b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
]
for r in requests:
    write("http1", b"\x00" + r)
    write("http1", b"\x09" + r)
responses = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\ngrpc-status: 0\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.0 200 OK\r\n\r\nuntil close",
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\ntunnel",
    b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
]
for r in responses:
    for control in (0x01, 0x03, 0x05, 0x07, 0x11):
        write("http1", bytes([control]) + r)

# HTTP/2: what follows the preface (first byte 0x00: one read).
hdrs = h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 1, h2.request_block("/", "x"))
post = h2.frame(h2.HEADERS, h2.END_HEADERS, 3, h2.request_block("/items/7", "items.test", "POST"))
frames = [
    h2.settings() + hdrs,
    h2.settings([(3, 100), (4, 65535)]) + hdrs + post + h2.frame(h2.DATA, h2.END_STREAM, 3, b"body"),
    h2.settings() + h2.frame(h2.HEADERS, 0, 1, h2.request_block()[:5])
    + h2.frame(h2.CONTINUATION, h2.END_HEADERS | h2.END_STREAM, 1, h2.request_block()[5:]),
    h2.settings() + hdrs + h2.frame(h2.RST_STREAM, 0, 1, b"\0\0\0\x08"),
    h2.settings() + h2.frame(h2.PING, 0, 0, b"12345678") + h2.frame(h2.WINDOW_UPDATE, 0, 0, b"\0\0\x10\0"),
    h2.settings() + h2.frame(h2.PRIORITY, 0, 1, b"\0\0\0\0\x10") + hdrs,
    h2.settings() + post + h2.frame(h2.DATA, h2.PADDED, 3, b"\x02ab\0\0")
    + h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 3, h2.literal("x-trailer", "1")),
    h2.settings() + h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 1,
                             h2.request_block() + h2.literal("x-dyn", "v", indexed=True) + b"\xbe"),
    h2.settings() + hdrs + h2.frame(h2.GOAWAY, 0, 0, b"\0\0\0\x01\0\0\0\0"),
]
for f in frames:
    write("http2", b"\x00" + f)
    write("http2", b"\x1c" + f)

# Lua: programs for the interpreter (see FuzzLua.swift); each byte picks an operation or an operand.
for seed in [bytes(range(0, 64)), bytes([1, 0, 3, 65, 66, 67, 2, 2, 2, 120, 121, 9, 4, 123, 125, 34, 34]),
             bytes([11, 3, 110, 115, 49, 1, 107, 0, 2, 118, 49, 12, 3, 110, 115, 49]),
             bytes([14, 1, 107, 1, 5, 15, 1, 107, 16, 1, 99, 101, 101, 110, 17, 1, 107]),
             bytes([6, 0, 5, 104, 101, 108, 108, 111, 7, 100, 102, 8, 24, 23, 0, 1, 120]),
             bytes([19, 0, 200, 0, 0, 2, 104, 105, 0])]:
    write("lua", bytes([len(seed) // 2]) + seed)

# JSON: the shapes the Lua tests decode, and edge cases.
for text in ['{"a":1,"b":[true,false,null],"c":{"d":"e"}}', '[1,2.5,-3e10,1e-7,"\\u00e9\\ud83d\\ude00"]',
             '"\\"\\\\\\/\\b\\f\\n\\r\\t"', '9007199254740993', '-0', '[[[[[[[[[[]]]]]]]]]]', '{}', '[]',
             ' \t\n null ', '{"k":{"k":{"k":[{"x":1}]}}}', '1.7976931348623157e308', '"\xc3\xa9"']:
    write("json", text)
