"""docs/threat-model.md maps every threat to the tests that cover it; this keeps the map
from rotting: every test it names must exist, every adversarial test file must be named
in it, and every threat row must name at least one test."""

from __future__ import annotations

import ast
import re

from .conftest import ROOT

DOC = ROOT / "docs" / "threat-model.md"
NAMED = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)`")


def _tests_in(path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    }


def _threat_rows(text: str) -> list[str]:
    section = text.split("## Threats and the tests that cover them", 1)[1].split("\n## ", 1)[0]
    return [
        line
        for line in section.splitlines()
        if line.startswith("| ") and not line.startswith(("| threat", "|---"))
    ]


def test_every_test_the_threat_model_names_exists():
    text = DOC.read_text(encoding="utf-8")
    named = NAMED.findall(text)
    assert len(named) >= 60
    missing = [
        (path, name)
        for path, name in named
        if not (ROOT / path).is_file() or name not in _tests_in(ROOT / path)
    ]
    assert not missing, missing


def test_every_threat_names_a_test_and_every_adversarial_file_is_mapped():
    text = DOC.read_text(encoding="utf-8")
    rows = _threat_rows(text)
    assert len(rows) >= 20
    for row in rows:
        assert NAMED.search(row), row.split("|")[1]
    mapped = {path for path, _name in NAMED.findall(text)}
    for path in sorted((ROOT / "tests").glob("test_adversarial_*.py")):
        assert "tests/%s" % path.name in mapped or path.name == "test_adversarial_threat_model.py"


def test_the_map_checker_would_notice_a_missing_test(tmp_path):
    fake = tmp_path / "test_fake.py"
    fake.write_text("def test_here():\n    pass\n")
    assert _tests_in(fake) == {"test_here"}
    assert "test_gone" not in _tests_in(fake)
