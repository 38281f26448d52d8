"""HTTP/1.1 Upgrade (WebSocket) is tunnelled: after the 101 the proxy carries raw bytes both ways."""
import socket
import threading

from conftest import free_port, simple_config


def upgrade_echo_server(port, stop):
    """Answers an Upgrade request with 101, then echoes bytes upper-cased until the client closes."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(8)
    srv.settimeout(0.2)

    def serve(conn):
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            head, rest = data.split(b"\r\n\r\n", 1)
            lower = head.lower()
            assert b"upgrade: websocket" in lower and b"connection: upgrade" in lower
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            if rest:
                conn.sendall(rest.upper())
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                conn.sendall(chunk.upper())

    while not stop.is_set():
        try:
            conn, _ = srv.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve, args=(conn,), daemon=True).start()
    srv.close()


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def test_websocket_upgrade_is_tunnelled(mesh):
    backend = free_port()
    stop = threading.Event()
    server = threading.Thread(target=upgrade_echo_server, args=(backend, stop))
    server.start()
    try:
        port = free_port()
        proxy = mesh.proxy(simple_config(port, backend))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head:
                head += s.recv(1)
            assert head.startswith(b"HTTP/1.1 101"), head
            assert b"upgrade: websocket" in head.lower()
            for i in range(50):
                msg = b"frame-%d-" % i + b"x" * (i * 100)
                s.sendall(msg)
                assert recv_exactly(s, len(msg)) == msg.upper()
            big = b"y" * (4 << 20)
            threading.Thread(target=s.sendall, args=(big,), daemon=True).start()
            assert recv_exactly(s, len(big)) == big.upper()
        lines = proxy.access_log(wait_lines=1)
        assert '"GET /chat HTTP/1.1" 101' in lines[0], lines
    finally:
        stop.set()
        server.join()
