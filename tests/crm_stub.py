"""A CRM for the IVR's lookup nodes to dip into: a local HTTP server answering each GET with what the test's
``answer(path, query)`` returns (status, body, content type), in the server's thread (a slow answer may sleep).

    with crm_stub.serve(lambda path, query: (200, b'{"name": "An"}', "application/json")) as url: ...
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

Answer = Callable[[str, dict[str, list[str]]], tuple[int, bytes, str]]


@contextmanager
def serve(answer: Answer) -> Iterator[str]:
    class Crm(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server name
            url = urlsplit(self.path)
            status, body, ctype = answer(url.path, parse_qs(url.query))
            try:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass                              # a slow answer's client has gone

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Crm)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
