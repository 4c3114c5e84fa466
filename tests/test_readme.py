"""Every example in the README runs as written after its first command (or, where it needs
a broker account, is checked: its options parse and its files exist), and the docs hold
together: no link to a file that is not there, no word of a spec outside the repository."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from posactors.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = sorted((ROOT / "docs").glob("*.md"))
# Options other branches are adding this session (run --live, approve --list/--reject):
# checked once the parser has them.
PENDING = {"--live", "--list", "--reject", "--http-port"}


def bash_lines(text: str) -> list[str]:
    """Each command of each ```bash block, continuation lines joined."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                lines.append(line.split("  #")[0].strip())
    return lines


LINES = bash_lines(README)
FIRST, SECOND = LINES[0], LINES[1]
NEEDS_ACCOUNT = ("run", "approve")  # a broker, or a service's pending approval


def needs_account(argv: list[str]) -> bool:
    return argv[0].endswith("posactors") and argv[1] in NEEDS_ACCOUNT


def test_the_second_command_is_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    for step in SECOND.split(" && "):  # each step of the README's test command, word for word
        assert step in ci, step


def options_of(command: str) -> set[str]:
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    return {o for a in commands[command]._actions for o in a.option_strings}


def check_parses(argv: list[str]) -> None:
    """The options parse and the files named exist. An option another branch is adding
    (PENDING) that the parser does not know yet leaves only the files checked."""
    waiting = [a for a in argv if a in PENDING and a not in options_of(argv[1])]
    if not waiting:
        args = build_parser().parse_args(argv[1:])
        assert not getattr(args, "config", None) or (ROOT / args.config).is_file()
    for i, word in enumerate(argv):
        if argv[i - 1] == "--config":
            assert (ROOT / word).is_file(), word


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A place that looks like the checkout after the first command: its files linked,
    and the first command's simulation run there, as written."""
    here = tmp_path_factory.mktemp("checkout")
    for name in ("config", "examples", "tools", "src", ".venv", "pyproject.toml"):
        (here / name).symlink_to(ROOT / name)
    simulate = FIRST.split(" && ")[-1]
    assert simulate.startswith(".venv/bin/posactors simulate ")
    done = subprocess.run(
        shlex.split(simulate), cwd=here, capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "duplicate orders 0" in done.stdout
    return here


EXAMPLES = [line for line in LINES[2:] if not line.startswith("export ")]


@pytest.mark.parametrize("line", EXAMPLES)
def test_each_example_runs_as_written(line, workspace):
    argv = shlex.split(line)
    if argv[0] == ".venv/bin/pip":  # setting up: the extra must exist
        extra = re.search(r"\.\[(\w+)\]", line)
        assert extra and f"\n{extra[1]} = " in (ROOT / "pyproject.toml").read_text()
        return
    assert argv[0] == ".venv/bin/posactors", line
    if needs_account(argv):
        check_parses(argv)
        return
    done = subprocess.run(argv, cwd=workspace, capture_output=True, text=True, timeout=900,
                          check=False)  # fmt: skip
    assert done.returncode == 0, (line, done.stderr[-3000:])
    assert "Traceback" not in done.stderr
    for word in argv:
        if word.endswith(".png"):
            assert (workspace / word).read_bytes()[:4] == b"\x89PNG"


def test_exports_name_alpacas_variables():
    for line in LINES:
        if line.startswith("export "):
            names = [a.split("=")[0] for a in shlex.split(line)[1:]]
            assert names and all(n.startswith("APCA_API_") for n in names), line


def test_every_preset_is_in_the_table_with_its_test():
    for preset in sorted((ROOT / "config").glob("*.yaml")):
        row = next(line for line in README.splitlines() if f"`config/{preset.name}`" in line)
        if preset.stem != "default":
            assert f"tests/e2e/test_preset_{preset.stem}.py" in row


def test_links_lead_to_files_and_nothing_outside_the_repository():
    for page in [ROOT / "README.md", *DOCS]:
        text = page.read_text(encoding="utf-8")
        assert "../shared" not in text and "SPEC.md" not in text and "SPEC section" not in text, (
            page
        )
        for target in re.findall(r"\]\(([^)#]+)\)", text):
            if not target.startswith("http"):
                assert (page.parent / target).exists(), (page, target)


def test_every_command_and_option_is_in_the_command_line_reference():
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name, sub in commands.items():
        assert f"## {name}" in text or f"posactors {name}" in text, name
        for action in sub._actions:
            for option in action.option_strings:
                if option.startswith("--") and option != "--help":
                    assert option in text, (name, option)


@pytest.mark.parametrize("recipe", ["posactors.service", "Containerfile"])
def test_the_service_recipes_run_a_valid_command(recipe):
    text = (ROOT / "deploy" / recipe).read_text()
    if recipe == "posactors.service":
        argv = shlex.split(re.search(r"^ExecStart=(.*)$", text, re.M)[1])
        assert "KillSignal=SIGTERM" in text and "EnvironmentFile=" in text
    else:
        entry = re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M)[1]
        cmd = re.search(r"^CMD (\[.*\])$", text, re.M)[1]
        argv = [*json.loads(entry), *json.loads(cmd)]
        assert 'VOLUME ["/state"]' in text and "STOPSIGNAL SIGTERM" in text
        assert "APCA_API_SECRET_KEY=" not in text  # credentials come from the environment
    assert argv[0].endswith("posactors") and argv[1] == "run"
    args = build_parser().parse_args(argv[1:])
    assert args.state and args.config
