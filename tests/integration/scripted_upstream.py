"""An HTTP/1.1 upstream that fails on purpose, by path, and remembers what it was sent.

  /flaky...        every other request (per path) answers 503, the others 200
  /fail-then-hang... the first request (per path) answers 503, later ones are held 30 s
  /fail...         always 503
  /hang-first...   the first request (per path) gets no answer for 5 s, later ones 200 at once
  /hang...         never answers (holds the request 30 s)
  /early...        the first request (per path) gets 503 and a close before its body is read
  /cut...          sends a 200 head and part of the body, then closes the connection
  anything else    200 with the request's body length
  GET /__seen      JSON list of every request before: method, path, host, body length, x-request-id,
                   x-envoy-attempt-count, and the client's port (peer_port: one per connection)

Usage: scripted_upstream.py PORT NAME [hang|fail]   (hang: every request is held 30 s, as /hang;
       fail: every request answers 503, as /fail)
"""
import collections
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

seen = []
hits = collections.Counter()
lock = threading.Lock()
NAME = sys.argv[2] if len(sys.argv) > 2 else "upstream"
HANG_ALL = len(sys.argv) > 3 and sys.argv[3] == "hang"
FAIL_ALL = len(sys.argv) > 3 and sys.argv[3] == "fail"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body=b""):
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.send_header("x-upstream", NAME)
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self):
        if self.path == "/__seen":
            with lock:
                return self.answer(200, json.dumps(seen).encode())
        path = self.path.split("?")[0]
        with lock:
            hits[path] += 1
            n = hits[path]
        if path.startswith("/early") and n == 1:
            # Answers before the body arrived, and closes.
            with lock:
                seen.append({"method": self.command, "path": self.path, "host": self.headers.get("host"),
                             "bytes": None, "request_id": self.headers.get("x-request-id"),
                             "attempt": self.headers.get("x-envoy-attempt-count")})
            self.close_connection = True
            self.send_response(503)
            self.send_header("content-length", "0")
            self.send_header("connection", "close")
            self.end_headers()
            return
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        with lock:
            seen.append({"method": self.command, "path": self.path, "host": self.headers.get("host"),
                         "bytes": len(body), "request_id": self.headers.get("x-request-id"),
                         "attempt": self.headers.get("x-envoy-attempt-count"),
                         "peer_port": self.client_address[1]})
        if path.startswith("/flaky"):
            return self.answer(503 if n % 2 == 1 else 200, f"{NAME} {n}".encode())
        if path.startswith("/fail-then-hang") and n > 1:
            time.sleep(30)
            return self.answer(200, b"late")
        if FAIL_ALL or path.startswith("/fail"):
            return self.answer(503, b"failing on purpose")
        if path.startswith("/hang-first"):
            if n == 1:
                time.sleep(5)
            return self.answer(200, f"{NAME} {n}".encode())
        if HANG_ALL or path.startswith("/hang"):
            time.sleep(30)
            return self.answer(200, b"late")
        if path.startswith("/cut"):
            self.send_response(200)
            self.send_header("content-length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * 1000)
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        return self.answer(200, f"{NAME} got {len(body)}".encode())

    do_GET = do_POST = do_PUT = handle_any


server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
server.daemon_threads = True
server.serve_forever()
