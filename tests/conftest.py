"""Shared fixtures. External pieces (the testkit, the age tool, PostgreSQL, Redis) are
real; a test that needs one that is missing is skipped with the reason."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTKIT = Path(os.environ.get("TESTIMONY_TESTKIT", ROOT.parent / "shared" / "testkit"))


@pytest.fixture(scope="session")
def age_vectors_dir() -> Path:
    folder = TESTKIT / "age"
    if not folder.is_dir():
        pytest.skip("the C2SP age vectors are absent: %s (../shared/testkit not beside the repo)"
                    % folder)
    return folder


@pytest.fixture(scope="session")
def age_binary() -> str:
    path = shutil.which("age")
    if not path:
        pytest.skip("the reference `age` tool is not installed (apt-get install age)")
    return path
