"""Whose state a state directory is: one broker account's, or the simulator's.

The store's ``meta`` key ``identity`` records it: ``{"kind": "account", "account_id",
"account_number", "live"}`` (as GET /v2/account reports them, ``live`` from the
endpoint) or ``{"kind": "simulator", "seed"}``. :func:`claim_state` peeks at it
read-only BEFORE the engine opens the state for writing and refuses (InputError,
exit 2) a state that belongs to something else: nothing is written then. A state
written before identities were recorded is the simulator's when it holds a
simulated account (``sim/``), else an account's: the first ``run`` adopts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmdb
import orjson

from posactors.errors import InputError
from posactors.store import StateStore

IDENTITY_KEY = "identity"
SIM_DIR = "sim"  # where SimExchange keeps the simulated account


def account_identity(account_id: str, account_number: str, live: bool) -> dict[str, Any]:
    """The identity of a broker account's state."""
    return {
        "kind": "account",
        "account_id": account_id,
        "account_number": account_number,
        "live": live,
    }


def simulator_identity(seed: int | None) -> dict[str, Any]:
    """The identity of a simulator's state (``seed`` None: a legacy state, seed unknown)."""
    return {"kind": "simulator", "seed": seed}


def describe(identity: dict[str, Any]) -> str:
    """Words for an identity, as a refusal names it."""
    if identity.get("kind") == "simulator":
        seed = identity.get("seed")
        return "the simulator" + ("" if seed is None else f" (--seed {seed})")
    kind = "live" if identity.get("live") else "paper"
    return f"{kind} account {identity.get('account_number')} (id {identity.get('account_id')})"


@dataclass(frozen=True)
class Claim:
    """What :func:`claim_state` found: ``adopted`` for a legacy account state taken over."""

    identity: dict[str, Any]
    adopted: bool = False


def recorded_identity(state_dir: Path) -> tuple[dict[str, Any] | None, bool]:
    """(the recorded identity or None, whether the state holds any data); read-only.

    A legacy state holding a simulated account reads as the simulator's.
    """
    state_dir = Path(state_dir)
    identity, has_data = None, False
    if (state_dir / "data.mdb").is_file():
        with StateStore(state_dir, readonly=True) as store:
            identity = store.meta().get(IDENTITY_KEY)
            kept = ("snapshots", "journal", "history", "approvals")
            has_data = any(store.entries(name) for name in kept)  # counts: nothing is read
    if identity is None and (state_dir / SIM_DIR).is_dir():
        return simulator_identity(_sim_seed(state_dir / SIM_DIR)), True
    return identity, has_data


def _sim_seed(path: Path) -> int | None:
    """The seed a legacy simulated account was made with, read without writing."""
    if not (path / "data.mdb").is_file():
        return None
    try:
        env = lmdb.open(str(path), readonly=True, lock=(path / "lock.mdb").exists())
    except lmdb.Error:
        return None
    try:
        with env.begin() as txn:
            raw = txn.get(b"meta")
        seed = None if raw is None else orjson.loads(bytes(raw)).get("seed")
    except (lmdb.Error, orjson.JSONDecodeError, AttributeError):
        seed = None
    finally:
        env.close()
    return seed if isinstance(seed, int) else None


def _matches(recorded: dict[str, Any], asked: dict[str, Any]) -> bool:
    if recorded.get("kind") != asked["kind"]:
        return False
    if asked["kind"] == "simulator":
        return recorded.get("seed") in (None, asked["seed"])
    return recorded.get("account_id") == asked["account_id"] and bool(recorded.get("live")) == bool(
        asked["live"]
    )


def claim_state(state_dir: Path, asked: dict[str, Any]) -> Claim:
    """Check ``state_dir`` belongs to ``asked`` and record it there if not yet recorded.

    Raises InputError, writing nothing, when the state belongs to something else
    (another account, the simulator, or for the simulator an account's legacy
    state). A legacy account state with data is adopted by an account
    (``Claim.adopted``).
    """
    recorded, has_data = recorded_identity(state_dir)
    adopted = False
    if recorded is None and has_data:
        if asked["kind"] != "account":
            raise InputError(
                f"--state {state_dir}: this state belongs to an account (written by "
                f"`posactors run`), not to {describe(asked)}; nothing was written "
                "(use another --state directory)"
            )
        adopted = True
    elif recorded is not None and not _matches(recorded, asked):
        raise InputError(
            f"--state {state_dir}: this state belongs to {describe(recorded)}, not to "
            f"{describe(asked)}; nothing was written (use another --state directory)"
        )
    if recorded != asked:
        # no upgrade here: the engine's own open does it, and logs it
        with StateStore(state_dir, upgrade=False) as store:
            store.write([("meta", IDENTITY_KEY, asked)])
    return Claim(asked, adopted)
