"""A real HTTP server on loopback that answers feed requests (the content tests)."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FeedServer:
    """A real HTTP server on a free loopback port answering from ``routes``.

    ``routes[path]`` is ``(status, headers, body)`` or a function of the request handler that
    returns one; every request's path and headers are kept in ``requests``.
    """

    def __init__(self):
        self.routes: dict = {}
        self.requests: list[tuple[str, dict]] = []
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                server.requests.append((self.path, dict(self.headers)))
                route = server.routes.get(self.path, (404, {}, b"not found"))
                status, headers, body = route(self) if callable(route) else route
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if status != 304:
                    self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda request, address: None  # a client that gave up
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str) -> str:
        """The full URL of ``path`` on this server."""
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def headers_of(self, path: str) -> list[dict]:
        """The request headers of every request for ``path``, oldest first."""
        return [headers for p, headers in self.requests if p == path]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()
