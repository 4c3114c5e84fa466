"""The simulated account on disk: one LMDB environment, orjson values, Decimals as strings.

Keys: ``meta`` (schema, seed, order counter, clock), ``sym/<symbol>`` (feed parameters),
``pos/<symbol>`` (a position), ``ord/<client_order_id>`` (an order with its fills). Every
change is committed in the call that makes it, and a killed process loses nothing
committed. Commits are not fsynced one by one (only at close): a simulated account need
not survive a power loss, and an fsync per order would cap a stress run at the disk's
flush rate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lmdb
import orjson

SCHEMA_VERSION = 1
META = b"meta"
MAP_SIZE = 1 << 30  # sparse file: only what is written takes disk space


def symbol_key(symbol: str) -> bytes:
    return f"sym/{symbol}".encode()


def position_key(symbol: str) -> bytes:
    return f"pos/{symbol}".encode()


def order_key(client_order_id: str) -> bytes:
    return f"ord/{client_order_id}".encode()


class SimStore:
    """Reads the whole account once, then writes small changes. Not thread-safe by itself."""

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        # sync=False: each commit reaches the OS at once, which is what a killed process needs.
        self._env = lmdb.open(str(path), map_size=MAP_SIZE, sync=False, metasync=False)

    def load(self) -> dict[str, Any]:
        """``{"meta": dict | None, "symbols": {}, "positions": {}, "orders": {}}``.

        Raises ValueError when the store is corrupt or written by a newer schema.
        """
        data: dict[str, Any] = {"meta": None, "symbols": {}, "positions": {}, "orders": {}}
        sections = {"sym": "symbols", "pos": "positions", "ord": "orders"}
        with self._env.begin() as txn:
            for key, value in txn.cursor():
                try:
                    record = orjson.loads(value)
                except orjson.JSONDecodeError as exc:
                    raise ValueError(f"sim store {self.path}: corrupt value at {key!r}") from exc
                if key == META:
                    data["meta"] = record
                    continue
                prefix, _, name = key.decode().partition("/")
                if prefix not in sections:
                    raise ValueError(f"sim store {self.path}: unknown key {key!r}")
                data[sections[prefix]][name] = record
        meta = data["meta"]
        if meta is None and (data["symbols"] or data["positions"] or data["orders"]):
            raise ValueError(f"sim store {self.path}: records without meta (corrupt)")
        if meta is not None and meta.get("schema") != SCHEMA_VERSION:
            raise ValueError(
                f"sim store {self.path}: schema {meta.get('schema')!r}, this version reads "
                f"{SCHEMA_VERSION}; refusing to open it"
            )
        return data

    def write(self, changes: dict[bytes, Any]) -> None:
        """Commit ``changes`` (a value of None deletes the key) in one transaction."""
        if not changes:
            return
        with self._env.begin(write=True) as txn:
            for key, value in changes.items():
                if value is None:
                    txn.delete(key)
                else:
                    txn.put(key, orjson.dumps(value))

    def close(self) -> None:
        self._env.sync(True)
        self._env.close()
