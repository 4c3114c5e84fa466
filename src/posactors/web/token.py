"""The status page's token: what a state-changing request must carry.

From ``POSACTORS_HTTP_TOKEN`` if set, else a fresh random one written at each
start to ``STATE/http_token``, readable by its owner only (0600).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

ENV = "POSACTORS_HTTP_TOKEN"
FILE = "http_token"


def load_token(state_dir: Path, env: Mapping[str, str] = os.environ) -> tuple[str, str]:
    """``(token, where it is)``; generates and writes one (0600) when the variable is unset."""
    token = env.get(ENV, "").strip()
    if token:
        return token, f"${ENV}"
    token = secrets.token_urlsafe(24)
    path = state_dir / FILE
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.replace(tmp, path)
    return token, str(path)
