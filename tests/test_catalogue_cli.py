"""The ``testimony`` command where no instance was initialised says so in one line and
exits non-zero (no traceback, nothing created); and README's administration list names
every subcommand the command has."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMMAND = Path(sys.executable).parent / "testimony"


def _run(instance: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(cwd),
        "TESTIMONY_INSTANCE_PATH": str(instance),
        "TESTIMONY_ARGON2_MEMORY_KIB": "1024",
        "TESTIMONY_ARGON2_TIME_COST": "1",
        "TESTIMONY_RECIPIENT_KEYS": "x25519",
    }
    return subprocess.run(
        [str(COMMAND), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


NEED_AN_INSTANCE = [
    ["incidents", "export"],
    ["incidents", "import", "catalogue.json"],
    ["audit", "verify"],
    ["reviewer", "list"],
    ["reviewer", "demo"],
    ["check"],
    ["purge", "--dry-run"],
    ["export", "key"],
]


@pytest.mark.sqlite
def test_commands_without_an_instance_say_so_in_one_line(tmp_path):
    assert COMMAND.exists(), "the console script is installed with the package (make)"
    instance = tmp_path / "instance"
    (tmp_path / "catalogue.json").write_text('{"format": "testimony-incidents/1"}')
    for args in NEED_AN_INSTANCE:
        done = _run(instance, *args, cwd=tmp_path)
        assert done.returncode != 0, args
        assert done.stderr == "no instance at %s: run `testimony init`\n" % instance, args
        assert done.stdout == "", args
        assert not instance.exists(), args  # not even the folder or its secret key
    assert _run(instance, "init", cwd=tmp_path).returncode == 0
    done = _run(instance, "incidents", "export", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert '"format": "testimony-incidents/1"' in done.stdout


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not nested or parser.get_default("handler"):
        yield path
    for action in nested:
        for name, child in action.choices.items():
            yield from _commands(child, (*path, name))


def test_readme_lists_every_subcommand():
    from review.cli import _review_commands
    from store.cli import build_parser

    parser, sub = build_parser()
    _review_commands(sub)
    commands = set(_commands(parser))
    assert ("incidents", "import") in commands and ("export", "verify") in commands
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Administration") :]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    listed = set()
    for line in block.splitlines():
        words = line.split("#")[0].split()
        if words[:1] != ["testimony"]:
            continue
        prefixes = [tuple(words[1:n]) for n in range(2, len(words) + 1)]
        listed.add(max((p for p in prefixes if p in commands), key=len, default=()))
    assert commands - listed == set(), "missing from README's administration list"
    assert listed - commands == set(), "README lists commands that do not exist"


def test_the_console_script_helps_with_the_same_subcommands():
    from review.cli import _review_commands
    from store.cli import build_parser

    parser, sub = build_parser()
    _review_commands(sub)
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [str(COMMAND), "--help"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    for name in sub.choices:
        assert re.search(r"^\s+%s\b" % name, done.stdout, re.M), name
