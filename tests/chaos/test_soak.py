"""The soak (issue: chaos): 500 positions through the engine in virtual time, under faults.

The CI run covers the last hour of a Monday session (the close: day orders expire),
the night, and the next morning's open (a gap), with two crashes; ``pytest -m slow
tests/chaos`` runs a whole week, nights and weekend included, with eight. Both print the
report (``-s`` shows it). See :mod:`chaos.soak` for what is injected and checked.

The soak found the bugs reproduced in test_found_bugs*.py (test_found_bugs_inputs.py: the
fuzzers'; test_found_bugs_boundary.py: with the trader of chaos.elsewhere acting beside
the engine); all of those are fixed. Besides its violations the report gives the
unprotected share-seconds by cause (chaos.exposure), the longest gap, and the 40310000
refusals (the engine's count and the exchange's). Both runs must end with zero
violations: the week run (twenty thousand positions, eight crashes, about 47,000 faults)
is the stricter one, and takes 23-27 minutes here. Figures in the closing notes.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from chaos.soak import NY, START, run_soak


def test_soak_through_the_close_with_crashes(tmp_path):
    report = run_soak(
        tmp_path,
        positions=500,
        sessions=0.2,  # 78 minutes of session: 15:00 to the close, then the next open
        seed=7,
        step_s=15.0,
        start=datetime(2024, 3, 11, 15, 0, tzinfo=NY),
        crashes=2,
        clean_s=300.0,
    )
    print(f"\nsoak (CI)\n{report.text()}")
    assert report.violations == 0, report.text()
    assert report.crashes == 2 and report.steps > 300
    assert report.faults and report.exits and report.orders > 1000
    assert report.elsewhere["sell_all"] and report.elsewhere["foreign"] and report.elsewhere["add"]


@pytest.mark.slow
def test_soak_a_whole_week(tmp_path):
    report = run_soak(
        tmp_path,
        positions=500,
        sessions=5.02,  # Monday open to Friday close, the weekend, 8 minutes of Monday
        seed=11,
        step_s=30.0,
        start=START,
        night_step_s=1800.0,
        crashes=8,
        progress=print,
    )
    print(f"\nsoak (a week)\n{report.text()}")
    assert report.violations == 0, report.text()
    assert report.crashes == 8 and report.virtual_s >= 4 * 86_400
