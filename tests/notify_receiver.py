"""A tiny HTTP receiver on 127.0.0.1 for notification tests (apprise's json:// posts here)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """Collects the JSON bodies posted to it; ``fail`` answers 500 to that many posts first."""

    def __init__(self, fail: int = 0) -> None:
        self.messages: list[dict] = []
        self.fail = fail
        self.posts = 0
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.cond:
                    receiver.posts += 1
                    failing = receiver.fail > 0
                    if failing:
                        receiver.fail -= 1
                    else:
                        receiver.messages.append(json.loads(body))
                    receiver.cond.notify_all()
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"json://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, n: int, timeout: float = 20.0) -> list[dict]:
        with self.cond:
            self.cond.wait_for(lambda: len(self.messages) >= n, timeout=timeout)
            return list(self.messages)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
