"""The status page in a real browser: Debian's headless Chromium driven by Playwright.

The engine runs against our Alpaca server (real alpaca-py); the browser sees the
positions, is refused an approval without the token, then approves the pending
take-profit with it, and the exit reaches the server. Set POSACTORS_SCREENSHOT
to a path to keep a screenshot of the page.
"""

from __future__ import annotations

import os
import shutil

from playwright.sync_api import expect, sync_playwright

from test_run_service import events, orders, server, wait_for  # noqa: F401
from test_status_page import Service

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def test_a_trader_approves_a_take_profit_in_the_browser(server, tmp_path):  # noqa: F811
    assert os.path.exists(CHROMIUM), "Debian's chromium is needed (.ci/run installs it)"
    server.set_price("AAPL", "111")  # past the take-profit: waits for a person
    svc = Service(server, tmp_path)
    try:
        wait_for(lambda: '"service_running"' in events(tmp_path))
        wait_for(svc.pending)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(svc.base + "/")
            positions = page.locator("section", has_text="Positions").locator("tbody tr")
            expect(positions).to_have_count(2)
            expect(positions.nth(0)).to_contain_text("MSFT")  # nearest its stop first
            expect(positions.nth(1)).to_contain_text("+11.00%")
            approvals = page.locator("section.approvals")
            expect(approvals).to_contain_text("AAPL")

            approvals.get_by_role("button", name="Approve").click()  # no token yet
            expect(page.locator("h1")).to_have_text("401")
            expect(page.locator("body")).to_contain_text("nothing was changed")
            assert svc.pending()[0]["status"] == "waiting" and orders(server, "AAPL") == []

            page.goto(svc.base + "/")
            page.fill("#token", svc.token())
            page.locator("section.approvals").get_by_role("button", name="Approve").click()
            expect(page.locator(".banner.done")).to_contain_text("approved AAPL take-profit")
            wait_for(lambda: any(o["status"] == "filled" for o in orders(server, "AAPL")))
            exits = page.locator("section", has_text="Recent exits")
            expect(exits).to_contain_text("take_profit", timeout=15_000)  # the page refreshes
            expect(page.locator("section.approvals")).to_have_count(0)
            shot = tmp_path / "status_page.png"
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
        assert svc.stop() == 0
    finally:
        svc.proc.kill()
    assert [o["symbol"] for o in server.orders] == ["AAPL"]
    assert shot.stat().st_size > 10_000
    if os.environ.get("POSACTORS_SCREENSHOT"):
        shutil.copy(shot, os.environ["POSACTORS_SCREENSHOT"])
