"""No adapter or runtime module reads the machine's wall clock to decide anything (SPEC
1.12: under ``run`` the broker's clock is "now"; elsewhere the virtual one). A grep-level
check: every read of the wall clock is in the allow-list below, with why it may stay."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "posactors"
WALL = re.compile(r"\b(datetime\.now|datetime\.utcnow|datetime\.today|date\.today|time\.time)\(")

ALLOWED = {  # (module, the line, stripped): why it may read the wall clock
    ("runtime/clock.py", "wall: Callable[[], datetime] = lambda: datetime.now(UTC),"): (
        "RealClock's SteadyNow reads the wall once at its start (the virtual and the "
        "broker's clocks replace it)"
    ),
    ("adapters/alpaca/broker.py", "return datetime.now(UTC)"): (
        "the adapter's clock until the engine hands it its own (use_clock)"
    ),
    ("adapters/alpaca/data.py", "return datetime.now(UTC)"): (
        "the adapter's clock until the engine hands it its own (use_clock)"
    ),
    ("adapters/alpaca/stream.py", "return datetime.now(UTC)"): (
        "the feed's clock until the broker hands it the engine's (use_clock)"
    ),
    (
        "adapters/alpaca/http.py",
        "seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()",
    ): "a Retry-After given as an HTTP date: a wait, against the server's wall date",
    ("adapters/alpaca/http.py", "return _clamp(reset - time.time())"): (
        "X-Ratelimit-Reset is in epoch seconds: a wait, clamped to [0, 300]"
    ),
}


def wall_clock_reads() -> set[tuple[str, str]]:
    found = set()
    for folder in ("adapters", "runtime"):
        for path in sorted((SRC / folder).rglob("*.py")):
            for line in path.read_text().splitlines():
                if WALL.search(line):
                    found.add((path.relative_to(SRC).as_posix(), line.strip()))
    return found


def test_no_adapter_or_runtime_module_reads_the_wall_clock_outside_the_allow_list():
    unexpected = wall_clock_reads() - set(ALLOWED)
    assert not unexpected, f"the wall clock read for a decision: {sorted(unexpected)}"


def test_the_allow_list_has_nothing_stale():
    assert set(ALLOWED) <= wall_clock_reads()


def test_the_check_catches_a_read():
    assert WALL.search("now = datetime.now(UTC)") and WALL.search("t0 = time.time()")
    assert not WALL.search("t0 = time.monotonic()")
