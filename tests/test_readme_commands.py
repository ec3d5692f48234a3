"""Every ``snakemake`` and ``normbench`` command in README.md's code blocks runs, in a cheap form (issue 19).

A README command that no longer parses, names a target the DAG cannot make, or a subcommand or option that
no longer exists fails here. Cheap forms: ``snakemake`` commands get ``-n`` (a dry run, in a copy of the
workflow so nothing under the repository is locked or written; ``--use-singularity`` meets a stub
``apptainer`` that only answers ``--version``, as in ``tests/test_container.py``); ``normbench`` commands that
only read and take seconds run as written (``FAST``), the others get ``--help`` (which still checks that the
subcommand exists; argparse stops at ``--help`` before it checks the other options), and the read-only slow
ones (``SLOW``) also run as written under ``-m slow``. Optional parts written ``[--flag]`` are dropped.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, copy_workflow

README = REPO / "README.md"
FAST = {"models", "references", "runs", "estimate"}  # read-only subcommands that take seconds (estimate: 8 s)
SLOW: set[str] = set()  # read-only subcommands too slow for CI, run as written under -m slow
STUB = "#!/bin/sh\n[ \"$1\" = --version ] && echo 'apptainer version 1.3.4' && exit 0\nexit 1\n"


def readme_commands(text: str) -> list[str]:
    """``snakemake``/``normbench`` commands of the fenced code blocks, one per ``&&`` part, comments cut."""
    blocks = re.findall(r"^\s*```[^\n]*\n(.*?)^\s*```", text, flags=re.M | re.S)
    commands = []
    for block in blocks:
        for line in block.splitlines():
            for part in line.split("&&"):
                if part.split()[:1] in (["snakemake"], ["normbench"]):
                    commands.append(shlex.join(shlex.split(part, comments=True)))
    return commands


COMMANDS = readme_commands(README.read_text())


def cheap_form(command: str, as_is: bool = False) -> list[str]:
    words = [w for w in shlex.split(command) if not (w.startswith("[") and w.endswith("]"))]
    if words[0] == "snakemake":
        return [words[0], "-n", *words[1:]]
    sub = words[1] if len(words) > 1 else ""
    return words if as_is or sub in FAST or sub.startswith("-") else [*words, "--help"]


CASES = [pytest.param(c, False, id=c) for c in COMMANDS] + [
    pytest.param(c, True, id=f"as-is: {c}", marks=pytest.mark.slow)
    for c in COMMANDS
    if c.split()[:1] == ["normbench"] and c.split()[1:2] and c.split()[1] in SLOW
]


def test_the_readme_has_commands_to_check():
    assert any(c.startswith("snakemake") for c in COMMANDS)
    assert any(c.startswith("normbench") for c in COMMANDS)


def test_configfile_never_swallows_a_target():
    """``--configfile`` takes several values: a target written after it is read as a second config file."""
    for command in COMMANDS:
        words = shlex.split(command)
        if "--configfile" in words:
            after = words[words.index("--configfile") + 1 :]
            assert len(after) == 1 or after[1].lstrip("[").startswith("-"), command  # [--flag]: optional


@pytest.fixture(scope="module")
def workflow_copy(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("readme")
    copy_workflow(dest, extra=("containers",))
    (dest / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())  # an input of rule container
    stub = dest / "stub-bin" / "apptainer"
    stub.parent.mkdir()
    stub.write_text(STUB)
    stub.chmod(0o755)
    return dest


@pytest.mark.parametrize(("command", "as_is"), CASES)
def test_readme_command_runs(command, as_is, workflow_copy):
    argv = cheap_form(command, as_is)
    cwd = workflow_copy if argv[0] == "snakemake" else REPO
    if argv[0] == "normbench":
        argv = [sys.executable, "-m", "normbench.cli", *argv[1:]]
    env = {**os.environ, "PATH": f"{workflow_copy / 'stub-bin'}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"{shlex.join(argv)} (in {cwd}):\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    if argv[:2] == ["snakemake", "-n"]:
        assert "Nothing to be done" in out.stdout + out.stderr or "Job stats:" in out.stdout, out.stdout[
            -2000:
        ]


INLINE = re.compile(r"`((?:normbench|snakemake) [^`]+)`")


def inline_commands() -> list[tuple[str, str]]:
    """(file, command) for every inline ``normbench ...``/``snakemake ...`` code span of README.md and docs/."""
    found = []
    for path in [README, *sorted((REPO / "docs").glob("*.md"))]:
        for command in INLINE.findall(path.read_text()):
            if ": error:" not in command:  # a quoted error message, not a command
                found.append((path.name, command.replace("\\|", "|")))
    return found


def _options(parser) -> set[str]:
    return {s for action in parser._actions for s in action.option_strings}


def test_inline_commands_name_real_subcommands_and_options():
    """Each inline command of the README and docs names a real sub-command and only options it has."""
    from normbench.cli.main import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    snakemake_help = subprocess.run(["snakemake", "--help"], capture_output=True, text=True).stdout
    bad = []
    commands = inline_commands()
    assert len(commands) > 20
    for where, command in commands:
        words = command.replace("[", " ").replace("]", " ").split()
        flags = [w.split("=")[0] for w in words[1:] if w.startswith("--")]
        if words[0] == "snakemake":
            bad += [f"{where}: {command}: snakemake has no {f}" for f in flags if f not in snakemake_help]
            continue
        sub = words[1] if len(words) > 1 else ""
        if sub.startswith("-"):
            bad += [f"{where}: {command}: no {f}" for f in flags if f not in _options(parser)]
        elif sub not in subparsers:
            bad.append(f"{where}: {command}: no sub-command {sub!r}")
        else:
            bad += [
                f"{where}: {command}: {sub} has no {f}" for f in flags if f not in _options(subparsers[sub])
            ]
    assert not bad, "\n".join(bad)


def test_the_inline_check_catches_a_wrong_option(monkeypatch):
    monkeypatch.setattr(
        sys.modules[__name__], "inline_commands", lambda: [("x.md", "normbench compare --stric")] * 21
    )
    with pytest.raises(AssertionError, match="compare has no --stric"):
        test_inline_commands_name_real_subcommands_and_options()
