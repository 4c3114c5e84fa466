"""The ``notify:`` section of the config: where notifications go and which events.

    notify:
      urls: ["tgram://BOT_TOKEN/CHAT_ID", "ntfy://my-topic"]   # any apprise URL
      events: [approval_requested, exit_filled]                 # default: all of them

The URLs may also come from the environment, ``POSACTORS_NOTIFY_URLS``
(space-separated, added to ``urls``), so that no token sits in the config file.
URLs carry tokens: they are kept as :class:`pydantic.SecretStr` (shown as
``**********``) and only :func:`mask_url` of them (the service's name) is ever
printed, logged, served or counted.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from posactors.policy_errors import NO_VALUE, FieldProblem

NotifyEvent = Literal[
    "approval_requested",
    "approval_withdrawn",
    "exit_filled",
    "exit_failed",
    "alert",
    "kill_switch",
    "position_parked",
    "breaker_tripped",
    "service_started",
    "service_stopped",
]
ALL_EVENTS: tuple[str, ...] = get_args(NotifyEvent)
ENV = "POSACTORS_NOTIFY_URLS"

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://\S+$")


def mask_url(url: str | SecretStr) -> str:
    """What may be shown of a notification URL: its scheme only (``tgram://***``)."""
    text = url.get_secret_value() if isinstance(url, SecretStr) else url
    match = _SCHEME.match(text.strip())
    return f"{match.group(1).lower()}://***" if match else "***"


class NotifySettings(BaseModel):
    """Notifications through apprise; see the module docstring."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    urls: tuple[SecretStr, ...] = ()
    events: tuple[NotifyEvent, ...] = ALL_EVENTS
    batch_s: float = Field(10.0, gt=0, le=3600)  # events within this window go as one message
    max_retries: int = Field(3, ge=0, le=10)
    retry_s: float = Field(2.0, gt=0, le=600)  # the first retry's delay; doubled each time
    max_lines: int = Field(20, ge=1, le=500)  # per message; the rest is counted, not listed

    @field_validator("urls", mode="before")
    @classmethod
    def _urls(cls, urls: object) -> object:
        if isinstance(urls, str):
            urls = [urls]
        if not isinstance(urls, list | tuple):
            raise FieldProblem("expected a list of apprise URLs (scheme://...)", value=NO_VALUE)
        for i, url in enumerate(urls):
            text = url.get_secret_value() if isinstance(url, SecretStr) else url
            if not isinstance(text, str) or not _SCHEME.match(text.strip()):
                # the value is never shown: it may carry a token
                raise FieldProblem("expected an apprise URL (scheme://...)", (i,), NO_VALUE)
        return urls

    def urls_masked(self) -> list[str]:
        return [mask_url(u) for u in self.urls]


def with_env_urls(settings: NotifySettings, value: str | None) -> NotifySettings:
    """``settings`` with the URLs of ``$POSACTORS_NOTIFY_URLS`` (``value``) added.

    Raises ValueError naming the variable, never its value, if one is not a URL.
    """
    extra = (value or "").split()
    if not extra:
        return settings
    if not all(_SCHEME.match(u) for u in extra):
        raise ValueError(f"{ENV}: expected apprise URLs (scheme://...), separated by spaces")
    return settings.model_copy(update={"urls": (*settings.urls, *map(SecretStr, extra))})
