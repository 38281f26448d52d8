"""A TCP echo server like Istio's tcp-echo sample: every line received is answered with
`<prefix> <line>`. When the client ends its writes (FIN), it answers `<prefix> bye <bytes>`
and closes: a reply that only arrives if the proxy passed the half-close on and kept the
other direction open. `--tls CERT KEY` serves the same over TLS.

    python3 tcp_echo.py PORT PREFIX [--tls CERT KEY]
"""
import socket
import ssl
import sys
import threading


def serve(conn, prefix, context):
    total = 0
    pending = b""
    try:
        if context is not None:
            conn.settimeout(10)
            conn = context.wrap_socket(conn, server_side=True)
            conn.settimeout(None)
        while True:
            data = conn.recv(65536)
            if not data:
                break
            total += len(data)
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                conn.sendall(prefix + b" " + line + b"\n")
        conn.sendall(prefix + b" bye " + str(total).encode() + b"\n")
    except (OSError, ssl.SSLError):
        pass
    finally:
        conn.close()


def main():
    port, prefix = int(sys.argv[1]), sys.argv[2].encode()
    context = None
    if len(sys.argv) > 3 and sys.argv[3] == "--tls":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(sys.argv[4], sys.argv[5])
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn, prefix, context), daemon=True).start()


if __name__ == "__main__":
    main()
