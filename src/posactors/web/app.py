"""The status page as a Starlette app: server-rendered (Jinja2), read-only unless a token is given.

Routes:
    GET  /            the page (positions nearest their stop, approvals, exits, alerts)
    GET  /fragment    the page's live part, fetched every few seconds by the page itself
    GET  /api/status  the same snapshot as JSON
    GET  /metrics     Prometheus (the same collector as ``--metrics-port``)
    POST /approve     approve or reject a pending take-profit: needs the token

Security: a state-changing request must carry the token (form field ``token``
or ``Authorization: Bearer``), else 401 and nothing changes. A browser's form
must also come from this page (``Origin``, or failing that ``Referer``, is this
server), else 403: a page elsewhere cannot make the trader's browser approve.
Nothing served names an API key or a notification URL (only their scheme).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from posactors.output import dumps, duration, fmt

TEMPLATES = Path(__file__).parent / "templates"
REFRESH_S = 3
ROWS = 100  # positions on the page: the nearest their stop; the rest are counted


@dataclass
class PageSource:
    """What the page reads and does: a snapshot, an answer to a request, the metrics."""

    snapshot: Callable[[], dict[str, Any]]
    answer: Callable[[str, bool], None]  # (approval_id, reject)
    metrics: Callable[[], bytes] = lambda: b""
    notify_targets: list[str] = field(default_factory=list)  # masked: scheme only
    token_hint: str = ""  # where the token is (a path or a variable name, never the token)


def _num(value: Any, places: int | None = None) -> str:
    if value is None:
        return "–"
    if places is not None and isinstance(value, Decimal | float | int):
        return f"{value:,.{places}f}"
    return fmt(value)


def _signed(value: Any, places: int = 2, suffix: str = "") -> str:
    return "–" if value is None else f"{value:+,.{places}f}{suffix}"


def _ago(then: datetime | None, now: datetime) -> str:
    return "–" if then is None else duration((now - then).total_seconds())


def _tone(value: Any) -> str:
    if value is None or value == 0:
        return "flat"
    return "up" if value > 0 else "down"


def _templates() -> Jinja2Templates:
    t = Jinja2Templates(directory=str(TEMPLATES))
    t.env.filters.update(num=_num, signed=_signed, tone=_tone)
    t.env.globals.update(ago=_ago, refresh_s=REFRESH_S, rows=ROWS)
    return t


def _same_origin(request: Request) -> bool:
    """A browser's request came from a page of this server (no header: not a browser form)."""
    host = request.headers.get("host", "")
    origin = request.headers.get("origin")
    if origin is not None:
        return origin != "null" and urlsplit(origin).netloc == host
    referer = request.headers.get("referer")
    return referer is None or urlsplit(referer).netloc == host


def _token_ok(given: str | None, token: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), token.encode())


def create_app(source: PageSource, token: str) -> Starlette:
    """The app; ``token`` is what ``POST /approve`` must carry."""
    templates = _templates()

    def context(**extra: Any) -> dict[str, Any]:
        snap = source.snapshot()
        return {"s": snap, "targets": source.notify_targets, "hint": source.token_hint, **extra}

    async def page(request: Request) -> Response:
        extra = {"done": request.query_params.get("done", "")[:200]}
        return templates.TemplateResponse(request, "page.html", context(**extra))

    async def fragment(request: Request) -> Response:
        return templates.TemplateResponse(request, "live.html", context())

    async def api_status(request: Request) -> Response:
        body = dumps(source.snapshot())
        return Response(body, media_type="application/json")

    async def metrics(request: Request) -> Response:
        return Response(source.metrics(), media_type="text/plain; version=0.0.4")

    async def approve(request: Request) -> Response:
        form = await request.form()
        header = request.headers.get("authorization", "")
        given = header[7:] if header.lower().startswith("bearer ") else form.get("token")
        browser = "text/html" in request.headers.get("accept", "")
        if not _token_ok(given if isinstance(given, str) else None, token):
            return _refused(browser, 401, "the token is missing or wrong: nothing was changed")
        if not _same_origin(request):
            return _refused(browser, 403, "this form did not come from this page")
        approval_id = str(form.get("approval_id", ""))
        reject = form.get("action") == "reject"
        waiting = {a["approval_id"]: a for a in source.snapshot()["approvals"]}
        row = waiting.get(approval_id)
        if row is None:
            return _refused(browser, 404, f"no pending approval {approval_id!r}")
        source.answer(approval_id, reject)
        done = f"{'rejected' if reject else 'approved'} {row['symbol']} take-profit"
        if browser:
            return RedirectResponse(f"/?done={quote(done)}", status_code=303)
        return JSONResponse({"ok": True, "done": done})

    return Starlette(
        routes=[
            Route("/", page),
            Route("/fragment", fragment),
            Route("/api/status", api_status),
            Route("/metrics", metrics),
            Route("/approve", approve, methods=["POST"]),
        ]
    )


def _refused(browser: bool, status: int, why: str) -> Response:
    if browser:
        body = (
            "<!doctype html><meta charset=utf-8><title>posactors: refused</title>"
            "<body style='font-family:system-ui;background:#0f1419;color:#e6e6e6;padding:2em'>"
            f"<h1>{status}</h1><p>{escape(why)}</p>"
            "<p><a style='color:#6cb6ff' href='/'>back</a></p>"
        )
        return HTMLResponse(body, status_code=status)
    return JSONResponse({"ok": False, "error": why}, status_code=status)
