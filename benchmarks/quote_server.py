"""The market-data server of the cycle benchmark: ``tests/alpaca_server.py`` in its own process.

Alpaca is another machine: its server must not share the engine's interpreter (and
GIL). The parent drives it with one JSON command per line on stdin and reads one JSON
answer per line on stdout:

- ``{"op": "setup", "symbols": [...], "now": ISO}``: every symbol at $100.00, the
  server's clock set to ``now`` (the benchmark's session time) and the market open
- ``{"op": "latency", "s": 0.02}``: sleep this long in every request before answering
- ``{"op": "move", "n": N, "by": "0.01"}``: the first N symbols' prices move by ``by``;
  answers the highest price now served (``top``)
- ``{"op": "requests"}``: how many GET /v2/stocks/snapshots it has answered

Each symbol's snapshot is rendered to JSON when its price is set (outside the timed
cycle), and an answer is those pieces joined: building and encoding 200 snapshots per
request costs the test server about 10 ms of CPU, and its one interpreter would answer a
poll's concurrent requests one after another, where Alpaca's machines answer them side
by side. What a request costs here is the latency, the HTTP exchange and reading the
JSON: the part that is the engine's.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parents[1] / "tests"


def serve() -> None:
    sys.path.insert(0, str(TESTS))
    import alpaca_server_http
    from alpaca_server import AlpacaServer
    from alpaca_server_json import snapshot_json

    server = AlpacaServer().start()
    rendered: dict[str, bytes] = {}

    def set_price(symbol: str, price: Decimal) -> None:
        server.set_price(symbol, price)
        rendered[symbol] = json.dumps(snapshot_json(server, symbol)).encode()

    def snapshots(app: Any, query: dict[str, str], body: Any) -> tuple[int, bytes]:
        found = (s for s in (query.get("symbols") or "").split(",") if s in rendered)
        return 200, b"{" + b",".join(b'"%s":%s' % (s.encode(), rendered[s]) for s in found) + b"}"

    routes = alpaca_server_http.ROUTES
    at = next(i for i, r in enumerate(routes) if r[:2] == ("GET", "/v2/stocks/snapshots"))
    routes[at] = (*routes[at][:3], snapshots)

    prices: dict[str, Decimal] = {}
    order: list[str] = []
    print(json.dumps({"url": server.url}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        op = command["op"]
        answer: dict[str, Any] = {"ok": True}
        if op == "setup":
            server.set_clock(datetime.fromisoformat(command["now"]), True)
            order = list(command["symbols"])
            for symbol in order:
                prices[symbol] = Decimal("100.00")
                set_price(symbol, prices[symbol])
        elif op == "latency":
            server.latency_s = float(command["s"])
        elif op == "move":
            by = Decimal(command["by"])
            for symbol in order[: int(command["n"])]:
                prices[symbol] += by
                set_price(symbol, prices[symbol])
            answer["top"] = str(max(prices.values()))
        elif op == "requests":
            answer["snapshots"] = server.count("GET", "/v2/stocks/snapshots")
        elif op == "quit":
            break
        print(json.dumps(answer), flush=True)
    server.stop()


class QuoteServer:
    """The parent's handle on a :func:`serve` process."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, __file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.url = self._read()["url"]

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the quote server died")
        return json.loads(line)

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self._proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self._proc.poll() is None:
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                self.call("quit")
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()

    def __enter__(self) -> QuoteServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    serve()
