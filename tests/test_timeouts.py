"""A hang fails its own test: every test runs under pytest-timeout's per-test limit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def test_a_per_test_limit_is_configured(pytestconfig: pytest.Config) -> None:
    assert 0 < float(pytestconfig.getini("timeout")) <= 600


def test_a_hanging_test_fails_alone(tmp_path: Path) -> None:
    (tmp_path / "test_hang.py").write_text(
        "import time\n\ndef test_hangs():\n    time.sleep(60)\n\ndef test_runs():\n    assert True\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "timeout=2", "test_hang.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stdout
    assert "1 failed, 1 passed" in done.stdout and "Timeout" in done.stdout, done.stdout
