"""The status page app on its own (uvicorn on 127.0.0.1, a snapshot without an engine),
and the live view's shell."""

from __future__ import annotations

import urllib.request

from posactors.live_view import LiveView
from posactors.state import evolve
from posactors.status_view import build_snapshot
from posactors.web import app as web_app
from posactors.web.app import PageSource, create_app
from posactors.web.server import WebServer
from test_live_view import T0, priced, snapshot


def serve(snap, answered=None):
    source = PageSource(
        snapshot=lambda: snap,
        answer=lambda approval_id, reject: (answered or []).append((approval_id, reject)),
        notify_targets=["tgram://***"],
        token_hint="$POSACTORS_HTTP_TOKEN",
    )
    server = WebServer(create_app(source, "tok"), "127.0.0.1", 0)
    server.start()
    return server


def get(server, path="/"):
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=10) as r:
        return r.read().decode()


def test_a_large_book_shows_the_nearest_and_counts_the_rest(monkeypatch):
    monkeypatch.setattr(web_app, "ROWS", 2)
    states = [priced(f"S{i:03d}", 100, 100 + i, stop=95) for i in range(5)]
    snap = build_snapshot(T0, {"mode": "PAPER", "parked": {}}, states)
    server = serve(snap)
    try:
        page = get(server)
    finally:
        server.stop()
    assert "S000" in page and "S001" in page and "S004" not in page
    assert "… and 3 more, farther from their stop" in page
    assert "<title>posactors · PAPER · 5 positions</title>" in page


def test_what_the_page_shows_is_escaped():
    hostile = "<script>alert(1)</script>"
    status = {"mode": "LIVE", "parked": {"X-1": hostile}}
    states = [evolve(priced("AAPL", 100, 101, stop=95), position_id="A-1")]
    server = serve(build_snapshot(T0, status, states))
    try:
        page = get(server, "/fragment")
    finally:
        server.stop()
    assert hostile not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'class="badge LIVE"' in page


def test_the_live_view_draws_then_prints_its_summary(capsys):
    snaps = iter([snapshot(), snapshot()])
    view = LiveView(lambda: next(snaps), url=None)
    view.update()
    text = view.close(0)
    assert text is not None and text.startswith("posactors stopped after 0s (PAPER, status 0)")
    out = capsys.readouterr().out
    assert "Positions nearest their stop" in out and out.rstrip().endswith("0 alert(s)")
