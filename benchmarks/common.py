"""What every benchmark shares: the account, the config, timing, medians, results, children.

A figure is one :func:`figure` dict, ``{"name", "value", "unit"}`` plus, where it is
compared, ``"baseline"`` and ``"ratio"`` (both measured in the same run), and where the
issue sets one, ``"target"`` (text) and ``"met"``. ``"note"`` says what a reader must
know to trust the number (e.g. "extrapolated").

Every account is the same: N long positions of 100 shares bought at $100 on N symbols
(``S00000``...), under ``config/default.yaml`` (stop -8%, trailing 5% once +10%), in a
session that is open: Monday 2024-03-11 10:00 New York. Real-time runs keep that
origin and let it advance with the monotonic clock (:func:`session_now`), so exits are
sent at once rather than deferred to the next open.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from posactors.adapters.sim import SimExchange
from posactors.model import Position, Side
from posactors.policy import Config, parse_config

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
TESTS = ROOT / "tests"
# 10:00 in New York, written in UTC as the service's clocks give it and Alpaca writes its
# quotes: a comparison of two times in different zones costs about 0.5 us (a quote's
# rules make several), which no service pays (BrokerClock)
START = datetime(2024, 3, 11, 10, 0, tzinfo=ZoneInfo("America/New_York")).astimezone(UTC)
ENTRY = Decimal(100)
QTY = Decimal(100)
RESULT_MARK = "@@RESULT "

# one origin for every clock of this process (and, passed along, of its server)
_T0 = time.monotonic()


def session_now() -> datetime:
    """Wall-clock time moving from :data:`START`: real pace, inside the session."""
    return START + timedelta(seconds=time.monotonic() - _T0)


def symbols(n: int) -> list[str]:
    return [f"S{i:05d}" for i in range(n)]


def positions(n: int, opened_at: datetime = START) -> list[Position]:
    return [Position(s, Side.LONG, QTY, ENTRY, opened_at) for s in symbols(n)]


def bench_config(**sections: dict[str, Any]) -> Config:
    """``config/default.yaml`` with whole sections deep-merged from ``sections``."""
    data = yaml.safe_load((ROOT / "config" / "default.yaml").read_text())
    for name, values in sections.items():
        data[name] = {**(data.get(name) or {}), **values}
    config, _ = parse_config(data, "benchmarks")
    return config


def sim_account(n: int, start: datetime = START, state_dir: Path | None = None) -> SimExchange:
    """An in-memory (or ``state_dir``) simulated account holding :func:`positions`."""
    sim = SimExchange(seed=1, start=start, state_dir=state_dir)
    for position in positions(n, start):
        sim.add_symbol(position.symbol, ENTRY, volatility=0.0)
        sim.open_position(position.symbol, position.side, position.qty, ENTRY, start)
    return sim


# --- statistics
def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def percentile(values: Iterable[float], p: float) -> float:
    """Nearest-rank percentile (the same rule as the engine's Metrics)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds ``fn`` took, and what it returned."""
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


# --- results
def figure(
    name: str,
    value: float,
    unit: str,
    *,
    baseline: float | None = None,
    ratio: float | None = None,
    target: str | None = None,
    met: bool | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "value": _round(value), "unit": unit}
    if baseline is not None:
        out["baseline"] = _round(baseline)
    if ratio is not None:
        out["ratio"] = _round(ratio)
    if target is not None:
        out["target"] = target
        out["met"] = met
    if note:
        out["note"] = note
    return out


def _round(x: float) -> float:
    if isinstance(x, int) or x == 0 or not math.isfinite(x):
        return x
    digits = max(3 - math.floor(math.log10(abs(x))), 0)  # 4 significant digits
    return round(x, digits)


class Results:
    """Figures in the order they were measured; each is printed as it arrives."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, item: dict[str, Any]) -> dict[str, Any]:
        self.items.append(item)
        print(f"  -> {describe(item)}", flush=True)
        return item

    def extend(self, items: Iterable[dict[str, Any]]) -> None:
        for item in items:
            self.add(item)

    def get(self, name: str) -> dict[str, Any] | None:
        return next((i for i in self.items if i["name"] == name), None)


def describe(item: dict[str, Any]) -> str:
    text = f"{item['name']} = {fmt(item['value'])} {item['unit']}"
    if "baseline" in item:
        text += f" (baseline {fmt(item['baseline'])}, ratio {fmt(item.get('ratio'))})"
    if "target" in item:
        text += f" [target {item['target']}: {'met' if item['met'] else 'MISSED'}]"
    if item.get("note"):
        text += f" ({item['note']})"
    return text


def fmt(x: Any) -> str:
    if x is None:
        return ""
    if isinstance(x, float):
        if x == 0:
            return "0"
        if abs(x) >= 1000:
            return f"{x:,.0f}"
        if abs(x) >= 10:
            return f"{x:.1f}"
        if abs(x) >= 1:
            return f"{x:.2f}"
        return f"{x:.3g}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def table(items: list[dict[str, Any]]) -> str:
    """A Markdown table: name, value, unit, baseline, ratio, target, met (and notes)."""
    head = ["figure", "value", "unit", "baseline", "ratio", "target", "met?"]
    rows = [
        [
            item["name"] + (" *" if item.get("note") else ""),
            fmt(item["value"]),
            item["unit"],
            fmt(item.get("baseline")),
            fmt(item.get("ratio")),
            item.get("target", ""),
            "" if "target" not in item else ("yes" if item["met"] else "**no**"),
        ]
        for item in items
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"  # noqa: E731
    out = [line(head), "| " + " | ".join("-" * w for w in widths) + " |"]
    out += [line(r) for r in rows]
    notes: dict[str, list[str]] = {}
    for item in items:
        if item.get("note"):
            notes.setdefault(item["note"], []).append(item["name"])
    if notes:
        out += [""] + [f"\\* {', '.join(names)}: {note}" for note, names in notes.items()]
    return "\n".join(out)


# --- memory
def rss_kib() -> dict[str, int]:
    """VmRSS, RssAnon and RssFile of this process, in KiB (Linux /proc)."""
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            found[key] = int(rest.split()[0])
    return found


# --- children: heavy cases run in a fresh interpreter
def run_child(module: str, args: dict[str, Any], timeout_s: float = 600) -> dict[str, Any]:
    """Run ``benchmarks/<module>.py --child ARGS`` and return the dict it reports.

    The child's other output is echoed, indented, as it comes.
    """
    command = [sys.executable, str(BENCH / f"{module}.py"), "--child", json.dumps(args)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    result: dict[str, Any] | None = None
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, text=True, env=env, cwd=str(ROOT)
    ) as child:
        assert child.stdout is not None
        deadline = time.monotonic() + timeout_s
        for line in child.stdout:
            if line.startswith(RESULT_MARK):
                result = json.loads(line[len(RESULT_MARK) :])
            else:
                print("    " + line.rstrip(), flush=True)
            if time.monotonic() > deadline:
                child.kill()
                break
        code = child.wait()
    if code != 0 or result is None:
        raise RuntimeError(f"{module} child failed (exit {code}) with {args}")
    return result


SWITCH_INTERVAL_ENV = "POSACTORS_BENCH_SWITCH_INTERVAL"


def use_switch_interval(seconds: float) -> None:
    """Set the interpreter's switch interval here and in every child started after."""
    from posactors.runtime.engine import tune_process

    tune_process(seconds)
    os.environ[SWITCH_INTERVAL_ENV] = repr(seconds)


def child_main(entry: Callable[..., dict[str, Any]]) -> None:
    """The ``--child ARGS`` face of a module: call ``entry(**ARGS)``, report its dict."""
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        if SWITCH_INTERVAL_ENV in os.environ:  # as the parent runs
            use_switch_interval(float(os.environ[SWITCH_INTERVAL_ENV]))
        result = entry(**json.loads(sys.argv[2]))
        print(RESULT_MARK + json.dumps(result), flush=True)
        sys.stdout.flush()
        os._exit(0)  # leftover daemon threads must not delay the parent
