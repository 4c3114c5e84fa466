"""The live interlock: against Alpaca's live trading endpoint ``run`` needs ``--live``.

In process, with every connection attempt and name lookup of this process refused and
recorded: a refused start makes none (and builds no alpaca-py client); a consented one
tries the live host first, and is stopped by the guard before anything leaves the machine.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from alpaca.trading.client import TradingClient

from posactors.cli import main
from posactors.service_start import is_live_endpoint

LIVE = "https://api.alpaca.markets"
CONFIG = "exits:\n  stop_loss: {pct: 5}\nbroker: {request_timeout_s: 0.5}\n"


@pytest.fixture
def attempts(monkeypatch) -> list[tuple]:
    """Every connection or name lookup tried in this process; each one is refused."""
    tried: list[tuple] = []

    def refuse(*args, **kwargs):
        tried.append(args)
        raise OSError("no network in this test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return tried


@pytest.fixture
def clients(monkeypatch) -> list[str]:
    """The base URL of every alpaca-py trading client built in this process."""
    built: list[str] = []
    init = TradingClient.__init__

    def record(self, *args, **kwargs):
        built.append(kwargs.get("url_override"))
        init(self, *args, **kwargs)

    monkeypatch.setattr(TradingClient, "__init__", record)
    return built


def run(monkeypatch, tmp_path: Path, url: str, *extra: str, config: str = CONFIG) -> int:
    for name in list(os.environ):
        if name.startswith("APCA_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("APCA_API_KEY_ID", "AKTESTKEY")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "testsecret")
    monkeypatch.setenv("APCA_API_BASE_URL", url)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(config)
    return main(["run", "--config", str(cfg), "--state", str(tmp_path / "state"), *extra])


@pytest.mark.parametrize("url", [LIVE, f"{LIVE}/v2", "https://API.Alpaca.Markets/"])
def test_live_endpoint_without_live_is_refused_before_any_request(
    monkeypatch, tmp_path, capsys, attempts, clients, url
):
    assert run(monkeypatch, tmp_path, url) == 2
    err = capsys.readouterr().err
    assert "LIVE trading endpoint" in err and "--live" in err and "live: true" in err
    assert url.rstrip("/").removesuffix("/v2") in err
    assert "Traceback" not in err
    assert attempts == [] and clients == []
    assert not (tmp_path / "state").exists()


def test_live_endpoint_in_the_config_is_refused_too(
    monkeypatch, tmp_path, capsys, attempts, clients
):
    config = CONFIG.replace("request_timeout_s: 0.5", f"request_timeout_s: 0.5, base_url: {LIVE}")
    assert run(monkeypatch, tmp_path, "https://paper-api.alpaca.markets", config=config) == 2
    assert "api.alpaca.markets is Alpaca's LIVE" in capsys.readouterr().err
    assert attempts == [] and clients == []


@pytest.mark.parametrize("consent", [("--live",), ()])
def test_with_consent_the_live_endpoint_is_the_first_contacted(
    monkeypatch, tmp_path, capsys, attempts, clients, consent
):
    config = CONFIG if consent else CONFIG + "live: true\n"
    assert run(monkeypatch, tmp_path, LIVE, *consent, config=config) == 1  # the guard refused
    assert attempts and attempts[0][0] == "api.alpaca.markets"
    assert {a[0] for a in attempts} == {"api.alpaca.markets"}
    assert clients and set(clients) == {LIVE}
    assert "LIVE trading endpoint" not in capsys.readouterr().err


def test_live_asked_against_paper_is_said_and_runs_as_paper(
    monkeypatch, tmp_path, capsys, attempts, clients
):
    paper = "https://paper-api.alpaca.markets"
    assert run(monkeypatch, tmp_path, paper, "--live") == 1  # reached the (refused) network
    err = capsys.readouterr().err
    assert f"{paper} is not Alpaca's live trading endpoint" in err
    assert {a[0] for a in attempts} == {"paper-api.alpaca.markets"}


def test_only_alpacas_live_trading_host_is_live():
    assert is_live_endpoint("https://api.alpaca.markets")
    assert is_live_endpoint("https://api.alpaca.markets:443/v2")
    for url in (
        "https://paper-api.alpaca.markets",
        "https://data.alpaca.markets",
        "http://127.0.0.1:8080",
        "https://api.alpaca.markets.example.com",
        "https://broker-api.alpaca.markets",
    ):
        assert not is_live_endpoint(url), url
