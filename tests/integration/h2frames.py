"""Hand-built HTTP/2 frames for tests that must send what no well-behaved client sends.

HPACK here is the literal subset (no Huffman): enough to open streams and to build
header blocks that reference the dynamic table."""
import socket
import struct
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 2, 3, 4, 6, 7, 8, 9
END_STREAM, END_HEADERS, PADDED = 0x1, 0x4, 0x8
ENHANCE_YOUR_CALM = 0xB


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def hpack_int(value, prefix_bits, first_byte_flags):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first_byte_flags | value])
    out = [first_byte_flags | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_string(s):
    b = s.encode() if isinstance(s, str) else s
    return hpack_int(len(b), 7, 0) + b


def literal(name, value, indexed=False):
    """A literal header field with a new name: incremental indexing (into the dynamic
    table) when `indexed`, else without indexing."""
    return (b"\x40" if indexed else b"\x00") + hpack_string(name) + hpack_string(value)


def request_block(path="/", authority="x", method="GET"):
    """:method, :scheme http, :path, :authority as literals (static-table names)."""
    out = b""
    for index, value in ((2, method), (6, "http"), (4, path), (1, authority)):
        out += hpack_int(index, 4, 0x00) + hpack_string(value)
    return out


def settings(pairs=()):
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


class Connection:
    """A raw h2c connection: sends bytes, parses frames the server sends."""

    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""
        self.closed = False

    def send(self, data):
        self.sock.sendall(data)

    def start(self):
        self.send(PREFACE + settings())

    def frames(self, until, timeout=5.0):
        """Reads frames until `until(kind, flags, stream, payload)` is true, the server
        closes, or `timeout`; returns every frame read, as tuples."""
        got = []
        deadline = time.time() + timeout
        while time.time() < deadline:
            while len(self.buffer) >= 9:
                length = int.from_bytes(self.buffer[:3], "big")
                if len(self.buffer) < 9 + length:
                    break
                kind, flags = self.buffer[3], self.buffer[4]
                stream = int.from_bytes(self.buffer[5:9], "big") & 0x7FFFFFFF
                payload = self.buffer[9:9 + length]
                self.buffer = self.buffer[9 + length:]
                got.append((kind, flags, stream, payload))
                if until(kind, flags, stream, payload):
                    return got
            if self.closed:
                return got
            self.sock.settimeout(max(0.01, deadline - time.time()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.closed = True
            self.buffer += chunk
        return got

    def goaway(self, timeout=5.0):
        """The (error code, debug data) of the server's GOAWAY, or None."""
        for kind, _, _, payload in self.frames(lambda k, *_: k == GOAWAY, timeout):
            if kind == GOAWAY:
                return struct.unpack(">I", payload[4:8])[0], payload[8:]
        return None

    def wait_closed(self, timeout=5.0):
        self.frames(lambda *_: False, timeout)
        return self.closed

    def close(self):
        self.sock.close()
