"""alpaca-py's REST clients, made fit for an engine that owns its retries.

Facts about alpaca-py 0.44 this module relies on (``alpaca/common/rest.py``):

- every request goes through ``RESTClient._session.request(method, url, **opts)`` and
  passes no ``timeout``: a silent server hangs the call forever. :func:`harden`
  replaces ``_session`` by a :class:`TimedSession` that adds ``timeout`` to each call
  and records the rate-limit headers of every answer.
- a 429 or 504 raises ``RetryException`` inside ``_one_request`` while ``retry > 0``,
  and ``_request`` then sleeps ``_retry_wait`` (3 s) and tries again, up to
  ``_retry`` (3) times. ``TradingClient`` takes no ``retry_attempts`` argument and
  ``RESTClient`` ignores ``retry_attempts=0`` (``if retry_attempts and ...``), so
  :func:`harden` sets ``_retry = 0`` and ``_retry_codes = []`` on the instance: the
  first 429 or 504 comes back as ``APIError`` at once.
- ``APIError`` carries the response; its ``code`` and ``message`` properties parse
  the body as JSON and raise on anything else, so :func:`map_api_error` reads the
  body itself.
"""

from __future__ import annotations

import email.utils
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, TypeVar

import orjson
import requests
from alpaca.common.exceptions import APIError
from alpaca.common.rest import RESTClient
from requests.adapters import HTTPAdapter

from posactors.errors import InputError
from posactors.model import (
    BrokerError,
    DuplicateOrder,
    InsufficientQty,
    OrderRejected,
    RateLimited,
    UnknownOutcome,
)

T = TypeVar("T")

PAPER_URL = "https://paper-api.alpaca.markets"
DATA_URL = "https://data.alpaca.markets"
KEY_VARS = ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY")
MAX_RETRY_AFTER_S = 300.0
MAX_CONNECTIONS = 16  # kept open per host: market_data.max_concurrent_requests is at most 16

Op = Literal["submit", "replace", "cancel", "read"]


class NotFound(BrokerError):
    """HTTP 404: what was asked for does not exist (callers decide what that means)."""


class MalformedResponse(BrokerError):
    """The server answered something that is not what Alpaca documents."""


@dataclass(frozen=True)
class AlpacaSettings:
    """Where and how to reach Alpaca. ``secret_key`` never appears in a repr."""

    api_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    base_url: str = PAPER_URL
    data_url: str = DATA_URL
    timeout_s: float = 5.0
    data_feed: str | None = None

    @property
    def paper(self) -> bool:
        return "paper" in self.base_url

    @property
    def stream_url(self) -> str:
        """The trade-updates websocket: ``/stream`` on the trading host, as Alpaca serves it."""
        return _ws_scheme(self.base_url) + "/stream"

    @property
    def data_stream_url(self) -> str:
        """The market-data websocket for ``data_feed`` (iex by default)."""
        feed = self.data_feed or "iex"
        if self.data_url.rstrip("/") == DATA_URL:
            return f"wss://stream.data.alpaca.markets/v2/{feed}"
        return _ws_scheme(self.data_url) + f"/v2/{feed}"


def settings_from_env(config: Any, env: Mapping[str, str] | None = None) -> AlpacaSettings:
    """Read keys and endpoints the way Alpaca's tools do; ``config.broker`` URLs win.

    Raises InputError naming the missing variables (never their values) or a URL that is
    not http(s). ``APCA_API_BASE_URL`` defaults to the paper endpoint: live trading must
    be asked for. ``APCA_DATA_FEED`` (iex, sip, ...) is optional.
    """
    env = os.environ if env is None else env
    missing = [name for name in KEY_VARS if not env.get(name, "").strip()]
    if missing:
        raise InputError(
            f"missing environment variable{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)}: set your Alpaca key pair"
        )
    broker = config.broker
    base = broker.base_url or env.get("APCA_API_BASE_URL") or PAPER_URL
    data = broker.data_url or env.get("APCA_API_DATA_URL") or DATA_URL
    return AlpacaSettings(
        api_key=env["APCA_API_KEY_ID"].strip(),
        secret_key=env["APCA_API_SECRET_KEY"].strip(),
        base_url=_endpoint(base, "APCA_API_BASE_URL / broker.base_url"),
        data_url=_endpoint(data, "APCA_API_DATA_URL / broker.data_url"),
        timeout_s=float(broker.request_timeout_s),
        data_feed=(env.get("APCA_DATA_FEED") or "").strip() or None,
    )


def _endpoint(url: str, name: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise InputError(f"{name}: expected an http(s):// URL, got {url!r}")
    # alpaca-py appends /v2 itself; a URL copied from older tools often ends in it
    return url.removesuffix("/v2")


def _ws_scheme(url: str) -> str:
    return "ws" + url.rstrip("/").removeprefix("http")


class RateGauge:
    """The last rate-limit headers seen on any answer (Alpaca's ``X-Ratelimit-*``)."""

    def __init__(self) -> None:
        self.remaining: int | None = None
        self.limit: int | None = None

    def observe(self, response: requests.Response) -> None:
        remaining = _int_header(response, "X-Ratelimit-Remaining")
        if remaining is not None:
            self.remaining = remaining
        limit = _int_header(response, "X-Ratelimit-Limit")
        if limit is not None:
            self.limit = limit


class TimedSession(requests.Session):
    """A requests session whose every call has a timeout and reports its answer's headers.

    Its answers read their JSON with orjson (a 200-symbol snapshot answer: ~0.6 ms
    instead of ~2.3 ms, the largest part of a poll's CPU); what orjson refuses (NaN, a
    number past 64 bits, bytes that are not UTF-8) goes to requests' own reader, which
    accepts or rejects it as before.
    """

    def __init__(self, timeout_s: float, gauge: RateGauge) -> None:
        super().__init__()
        self.timeout_s = timeout_s
        self.gauge = gauge
        # requests keeps 10 connections a host; concurrent chunks (at most 6) and the rest
        for prefix in ("https://", "http://"):
            self.mount(prefix, HTTPAdapter(pool_maxsize=MAX_CONNECTIONS))

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout_s
        response = super().request(method, url, *args, **kwargs)
        self.gauge.observe(response)
        response.json = partial(_json, response)  # type: ignore[method-assign]
        return response


def _json(response: requests.Response, **kwargs: Any) -> Any:
    """``response.json()`` by orjson, else (or with arguments) by requests."""
    if not kwargs:
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            pass
    return requests.Response.json(response, **kwargs)


def harden(client: RESTClient, timeout_s: float, gauge: RateGauge) -> RESTClient:
    """Give every request of ``client`` a timeout and turn off its sleeping 429/504 retry."""
    client._session.close()
    client._session = TimedSession(timeout_s, gauge)
    client._retry = 0
    client._retry_wait = 0
    client._retry_codes = []
    return client


def guarded(op: Op, what: str, fn: Callable[[], T]) -> T:
    """Run one SDK call; every failure comes out as a BrokerError subclass.

    Timeouts, connection errors and 5xx are UnknownOutcome (the request may have been
    carried out); a body that cannot be read is UnknownOutcome on a submit or replace
    (the order may exist) and MalformedResponse on anything else.
    """
    try:
        return fn()
    except APIError as err:
        raise map_api_error(err, op, what) from None
    except requests.Timeout:
        raise UnknownOutcome(f"{what}: no answer within the request timeout") from None
    except requests.RequestException as err:
        if not isinstance(err, requests.JSONDecodeError):
            raise UnknownOutcome(f"{what}: {type(err).__name__}: {_short(str(err))}") from None
        kind = UnknownOutcome if op in ("submit", "replace") else MalformedResponse
        raise kind(f"{what}: unreadable answer (not JSON: {_short(str(err))})") from None
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        # a non-JSON body, or JSON of the wrong shape for the SDK's own unpacking
        kind = UnknownOutcome if op in ("submit", "replace") else MalformedResponse
        raise kind(
            f"{what}: unreadable answer ({type(err).__name__}: {_short(str(err))})"
        ) from None


def map_api_error(err: APIError, op: Op, what: str) -> BrokerError:
    """Alpaca's HTTP errors as the engine's BrokerError subclasses (see the module doc)."""
    response = err.response
    status = err.status_code or 0
    code, message = _error_body(response.text if response is not None else str(err))
    text = f"{what}: {message} (HTTP {status}{f', code {code}' if code else ''})"
    lowered = message.lower()
    if status == 429:
        return RateLimited(text, retry_after(response))
    if status >= 500:
        return UnknownOutcome(text)
    if status == 404:
        return NotFound(text)
    if status == 401:
        return BrokerError(f"{text}: check APCA_API_KEY_ID and APCA_API_SECRET_KEY")
    if "client_order_id must be unique" in lowered:
        return DuplicateOrder(text)
    if code == 40310000 or "insufficient qty" in lowered:
        return InsufficientQty(text)
    if op == "read":
        return BrokerError(text)
    if status == 403:
        return OrderRejected(f"trading restriction: {text}")
    return OrderRejected(text)


def retry_after(response: requests.Response | None) -> float:
    """Seconds to wait after a 429: ``Retry-After`` (seconds or a date), else
    ``X-Ratelimit-Reset`` (epoch seconds), else 1; clamped to [0, 300]."""
    if response is None:
        return 1.0
    value = response.headers.get("Retry-After")
    if value:
        seconds = _float(value)
        if seconds is None:
            try:
                seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
            except (TypeError, ValueError, IndexError, OverflowError):
                seconds = None
        if seconds is not None:
            return _clamp(seconds)
    reset = _float(response.headers.get("X-Ratelimit-Reset"))
    if reset is not None:
        return _clamp(reset - time.time())
    return 1.0


def _clamp(seconds: float) -> float:
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def _float(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


def _int_header(response: requests.Response, name: str) -> int | None:
    value = response.headers.get(name)
    number = _float(value.rsplit(",", 1)[-1]) if value else None  # repeated: the last
    return int(number) if number is not None else None


def _error_body(body: str) -> tuple[int | None, str]:
    """Alpaca's ``{"code": 40310000, "message": "..."}``, tolerating anything else."""
    try:
        data = json.loads(body)
    except (ValueError, TypeError):
        return None, _short(body) or "no message"
    if not isinstance(data, dict):
        return None, _short(body)
    try:
        code = int(data.get("code")) if data.get("code") is not None else None
    except (TypeError, ValueError):
        code = None
    message = data.get("message", data.get("msg"))
    return code, _short(str(message)) if message is not None else _short(body)


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
