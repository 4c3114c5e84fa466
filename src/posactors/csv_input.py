"""Reading a CSV file we were handed: its header checked, every row with its line number."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from posactors.errors import InputError


def checked_rows(
    path: Path, what: str, required: Sequence[str], optional: Sequence[str] = ()
) -> Iterator[tuple[str, dict[str, str]]]:
    """``(where, row)`` for each data row, ``where`` being ``path:line``.

    The header must hold every required column and nothing unknown; a row with
    too few or too many cells is refused. Either raises :class:`InputError`
    naming the file, the line and what was expected. A byte-order mark is allowed.
    """
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what} file ({exc.strerror})") from None
    try:
        yield from _rows(path, handle, required, optional)
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None


def _rows(
    path: Path, handle: TextIO, required: Sequence[str], optional: Sequence[str]
) -> Iterator[tuple[str, dict[str, str]]]:
    with handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        missing = [name for name in required if name not in header]
        unknown = [name for name in header if name not in (*required, *optional)]
        if missing or unknown:
            extra = f" and optionally {','.join(optional)}" if optional else ""
            raise InputError(
                f"{path}:1: header {','.join(header)!r}: expected {','.join(required)}{extra} "
                f"(missing: {missing or 'none'}, unknown: {unknown or 'none'})"
            )
        reader.fieldnames = header
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if None in row or any(v is None for v in row.values()):
                raise InputError(f"{where}: expected {len(header)} columns")
            yield where, row
