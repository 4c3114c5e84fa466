"""The ``posactors`` command line (SPEC section 4: a stable surface).

Exit status: 0 success, 2 bad input (config, arguments, data), 1 anything else.
Each command lives in its own function; the parsers are registered in
:func:`build_parser`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import orjson

from posactors.backtest.cli import register
from posactors.errors import InputError
from posactors.inspect_state import add_inspect_arguments
from posactors.output import dumps, emit_json, fmt
from posactors.policy import ConfigError, load_config
from posactors.preflight import free_port, writable_file
from posactors.store import StoreError

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


def _warn(messages: Sequence[str]) -> None:
    for message in messages:
        print(f"warning: {message}", file=sys.stderr)


def cmd_config_check(args: argparse.Namespace) -> int:
    """Validate each file; print the effective policy per symbol (YAML) with ``--show``.

    With ``--json`` one object per file on stdout, valid or not:
    ``{"file", "ok", "errors", "warnings"[, "policies"]}``.
    """
    status = EXIT_OK
    for path in args.files:
        try:
            config, warnings = load_config(path)
        except ConfigError as exc:
            status = EXIT_BAD_INPUT
            if args.json:
                emit_json({"file": str(path), "ok": False, "errors": exc.problems, "warnings": []})
            else:
                print(str(exc), file=sys.stderr)
            continue
        if args.json:
            emit_json(
                {
                    "file": str(path),
                    "ok": True,
                    "errors": [],
                    "warnings": warnings,
                    **_policies(config, args),
                }
            )
            continue
        _warn(warnings)  # each already names the file
        print(f"{path}: ok ({len(warnings)} warning{'s' * (len(warnings) != 1)})")
        policies = _policies(config, args)
        if policies:
            print(yaml_text({"effective policy": policies["policies"]}), end="")
    return status


def yaml_text(value: object) -> str:
    """Plain YAML for a person, in the order given."""
    import yaml

    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False, allow_unicode=True)


def _policies(config, args: argparse.Namespace) -> dict:
    if not (args.show or args.symbol):
        return {}
    symbols = args.symbol or ["*", *config.symbols_with_overrides()]
    policies = {}
    for symbol in symbols:
        policy = config.exits if symbol == "*" else config.policy_for(symbol)
        # Decimals as plain numbers, times as text (the same values in YAML and in JSON)
        policies[symbol] = orjson.loads(dumps(policy.model_dump(exclude_none=True)))
    return {"policies": policies}


def cmd_config_schema(args: argparse.Namespace) -> int:
    """The JSON Schema of the configuration file (editors validate YAML against it)."""
    from posactors.config_reference import json_schema

    print(json.dumps(json_schema(), indent=2))
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    """One position through the core on a ticks file, in virtual time."""
    from posactors.calendar import xnys
    from posactors.replay import parse_time, replay

    config, warnings = load_config(args.config)
    _warn(warnings)
    opened = parse_time(args.opened, "--opened") if args.opened else None
    result = replay(config, args.position, Path(args.ticks), xnys(), opened)
    summary = result.summary()
    if args.json:
        for record in result.exit_records():
            emit_json(record)
        emit_json({"summary": summary})
        return EXIT_OK
    for r in result.exit_records():
        print(
            f"{r['time']}  {r['side']:4} {fmt(r['qty']):>8} {r['symbol']:6} {r['type']:6} "
            f"{r['reason']:16} fill {fmt(r['fill_price']):>10}  {r['client_order_id']}"
        )
    print(
        f"{summary['symbol']}: {len(result.exit_records())} exit order(s), remaining "
        f"{fmt(summary['remaining_qty'])}, realized P&L {fmt(summary['realized_pnl'])}, "
        f"{summary['bad_quotes']} bad quote(s) skipped of {summary['ticks']} ticks"
    )
    if summary["pending_approval"]:
        print(f"pending approval: {summary['pending_approval']}")
    return EXIT_OK


def usable_state_dir(value: str, create: bool = True) -> Path:
    """``--state``: a directory that exists or can be made, and can be written.

    With ``create=False`` nothing is made yet (``run`` checks its keys first): the
    nearest existing ancestor must then be a writable directory.
    """
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise InputError(f"--state {value}: expected a directory, found a file")
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"--state {value}: cannot create it ({exc.strerror})") from exc
    existing = next(p for p in (path, *path.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise InputError(f"--state {value}: cannot create it ({existing} is not a directory)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"--state {value}: not writable (a read-only directory?)")
    return path


def cmd_simulate(args: argparse.Namespace) -> int:
    """The engine on the embedded simulated exchange, in virtual time."""
    from posactors.policy import Config
    from posactors.runtime.engine import tune_process
    from posactors.simulate import SimulateOptions, run_simulation

    if args.positions < 1:
        raise InputError(f"--positions {args.positions}: expected at least 1")
    if not math.isfinite(args.duration) or args.duration <= 0:
        raise InputError(f"--duration {args.duration}: expected a number of seconds > 0")
    if args.speed is not None and not (math.isfinite(args.speed) and args.speed > 0):
        raise InputError(
            f"--speed {args.speed}: expected a factor > 0 (virtual seconds per second)"
        )
    if args.config:
        config, warnings = load_config(args.config)
        _warn(warnings)
    else:
        config = Config()
        _warn(["no --config: the built-in defaults have no exit rule; nothing will exit"])
    log_path = writable_file("--log", args.log) if args.log is not None else None
    options = SimulateOptions(
        positions=args.positions,
        duration_s=args.duration,
        seed=args.seed,
        state_dir=usable_state_dir(args.state) if args.state else None,
        speed=args.speed,
        log_path=log_path,
    )
    switch_interval = tune_process()  # this process hosts the engine: see tune_process
    try:
        summary = run_simulation(config, options, live=not args.json and sys.stdout.isatty())
    finally:
        sys.setswitchinterval(switch_interval)
    if args.json:
        emit_json({"summary": summary})
    else:
        from posactors.simulate_report import render_text

        print(render_text(summary, args.state or "a temporary folder"))
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """The service against Alpaca, until SIGINT/SIGTERM."""
    from posactors.service import run_service

    config, warnings = load_config(args.config)
    _warn(warnings)
    if args.dry_run:
        config = config.model_copy(update={"dry_run": True})
    if args.live:
        config = config.model_copy(update={"live": True})
    state_dir = usable_state_dir(args.state or str(config.state.path), create=False)
    from posactors.control import ControlOptions

    if args.http_host is not None and args.http_port is None:
        raise InputError(f"--http-host {args.http_host}: needs --http-port")
    host = args.http_host or "127.0.0.1"
    # a port in use: exit 2 before anything starts
    if args.metrics_port is not None:
        free_port("--metrics-port", args.metrics_port)
    if args.http_port is not None:
        free_port("--http-port", args.http_port, host)
    control = ControlOptions(
        live=sys.stdout.isatty(),
        metrics_port=args.metrics_port,
        http_port=args.http_port,
        http_host=host,
    )
    return run_service(config, state_dir, control=control)


def cmd_approve(args: argparse.Namespace) -> int:
    """List, approve or reject pending exits (take-profits with ``require_approval``)."""
    from posactors.approve_cmd import approve_command

    return approve_command(
        Path(args.state), args.id, list_only=args.list, reject=args.reject, as_json=args.json
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="posactors", description="Exit engine for Alpaca positions."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    config = commands.add_parser("config", help="check config files")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    check = config_commands.add_parser("check", help="validate config files")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument("--show", action="store_true", help="print the effective policy")
    check.add_argument("--symbol", action="append", help="effective policy for SYMBOL")
    check.add_argument("--json", action="store_true")
    check.set_defaults(handler=cmd_config_check)
    schema = config_commands.add_parser("schema", help="print the config's JSON Schema")
    schema.set_defaults(handler=cmd_config_schema)

    rp = commands.add_parser("replay", help="one position through the rules on a ticks file")
    rp.add_argument("--config", required=True, metavar="FILE")
    rp.add_argument("--position", required=True, metavar="SYMBOL:QTY@PRICE")
    rp.add_argument("--opened", metavar="ISO", help="opening time (default: the first tick)")
    rp.add_argument("--ticks", required=True, metavar="FILE.csv")
    rp.add_argument("--json", action="store_true")
    rp.set_defaults(handler=cmd_replay)

    sim = commands.add_parser("simulate", help="the engine on the embedded simulated exchange")
    sim.add_argument("--positions", type=int, required=True, metavar="N")
    sim.add_argument(
        "--duration",
        type=float,
        default=1800.0,
        metavar="S",
        help="virtual seconds to run this time (default 1800); on an existing --state the "
        "account continues from its own clock",
    )
    sim.add_argument("--seed", type=int, default=0, metavar="K")
    sim.add_argument("--config", metavar="FILE")
    sim.add_argument("--state", metavar="DIR", help="persist the engine and the account here")
    sim.add_argument(
        "--speed",
        type=float,
        metavar="X",
        help="virtual seconds per real second (default: as fast as possible)",
    )
    sim.add_argument("--log", metavar="FILE", help="append JSON event lines here")
    sim.add_argument("--json", action="store_true")
    sim.set_defaults(handler=cmd_simulate)

    run = commands.add_parser("run", help="the service against Alpaca (APCA_* variables)")
    run.add_argument("--config", required=True, metavar="FILE")
    run.add_argument("--state", metavar="DIR", help="state directory (default: state.path)")
    run.add_argument("--dry-run", action="store_true", help="decide and journal, send nothing")
    run.add_argument(
        "--live", action="store_true", help="required against Alpaca's live trading endpoint"
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics on 127.0.0.1:PORT/metrics",
    )
    run.add_argument(
        "--http-port",
        type=int,
        metavar="PORT",
        help="serve the status page (and /metrics) on 127.0.0.1:PORT",
    )
    run.add_argument(
        "--http-host",
        metavar="ADDR",
        help="listen on ADDR instead of 127.0.0.1 (say 0.0.0.0 to expose the page: take care)",
    )
    run.set_defaults(handler=cmd_run)

    ap = commands.add_parser("approve", help="list, approve or reject pending take-profits")
    ap.add_argument("--state", required=True, metavar="DIR")
    ap.add_argument("id", nargs="?", metavar="ID|SYMBOL", help="an approval id or a symbol")
    ap.add_argument("--list", action="store_true", help="the requests waiting for a person")
    ap.add_argument("--reject", action="store_true", help="say no: the exit is not sent")
    ap.add_argument("--json", action="store_true", help="with --list: one JSON object a line")
    ap.set_defaults(handler=cmd_approve)
    register(commands)

    ins = commands.add_parser("inspect", help="every position's state from a state directory")
    add_inspect_arguments(ins)
    ins.set_defaults(handler=cmd_inspect)
    return parser


def cmd_inspect(args: argparse.Namespace) -> int:
    """Every position's state from the store of a running or stopped service, read-only."""
    from posactors.inspect_state import inspect_command

    return inspect_command(args)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    nul = next((i for i, arg in enumerate(argv) if "\x00" in arg), None)
    if nul is not None:  # no file name, symbol or number has one: a mistake, said once here
        print(f"error: argument {nul + 1} ({argv[nul]!r}) contains a NUL byte", file=sys.stderr)
        return EXIT_BAD_INPUT
    args = build_parser().parse_args(argv)
    try:
        status = args.handler(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return status
    except (InputError, ConfigError, StoreError) as exc:  # StoreError: a state refused
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `posactors inspect ... | head -1`: the reader had enough
        quiet_stdout()
        return EXIT_OK
    except Exception as exc:  # not the user's doing: a message, the traceback only on request
        return unexpected_error(exc)


def quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush cannot fail on a closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    finally:
        os.close(devnull)


def unexpected_error(exc: BaseException) -> int:
    """Exit 1 with one line naming the error; ``POSACTORS_DEBUG=1`` adds the traceback."""
    if os.environ.get("POSACTORS_DEBUG"):
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    print(
        f"error: posactors stopped on an unexpected error: {type(exc).__name__}: {exc}\n"
        "  (set POSACTORS_DEBUG=1 to see where; please report it with that output)",
        file=sys.stderr,
    )
    return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
