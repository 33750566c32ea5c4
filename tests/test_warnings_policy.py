"""pyproject's warning filters: a DeprecationWarning attributed to our own code fails the test,
one attributed to a third-party module does not.

A pytest run in a subprocess, with the project's configuration, over a test file that raises
deprecations from modules named like ours and like a library's: `warnings` attributes a warning to
the module where `warnings.warn` is called, moved up the stack by `stacklevel`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = '''
import types
import warnings

import pytest

WARN = """
import warnings


def old(stacklevel=1):
    warnings.warn("old API", DeprecationWarning, stacklevel=stacklevel)


def call(function):
    function(stacklevel=2)
"""


def module(name):
    """A module named `name` that warns: the name is what the filter matches."""
    probe = types.ModuleType(name)
    exec(WARN, probe.__dict__)
    return probe


@pytest.mark.parametrize("name", ["domain.probe", "serving.auth.probe", "sensors.probe", "tests.probe"])
def test_ours(name):
    module(name).old()


def test_a_library_warning_about_our_call():
    module("serving.probe").call(module("somelib.api").old)


def test_a_library_of_its_own():
    module("somelib.api").old()


def test_a_library_calling_a_library():
    module("otherlib.core").call(module("somelib.api").old)


def test_our_test_module_itself():
    warnings.warn("old test helper", DeprecationWarning, stacklevel=1)
'''


def test_deprecations_from_our_modules_fail_and_third_party_ones_do_not(tmp_path: Path) -> None:
    (tmp_path / "test_probe.py").write_text(PROBE)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(ROOT / "pyproject.toml"),
            "--rootdir",
            str(tmp_path),
            "-p",
            "no:cacheprovider",
            "-n",
            "0",
            "-q",
            "-rA",
            str(tmp_path / "test_probe.py"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    outcomes = {
        line.split(" ", 1)[1].split("::", 1)[1].split(" - ", 1)[0]: line.split(" ", 1)[0]
        for line in done.stdout.splitlines()
        if line.startswith(("PASSED ", "FAILED "))
    }
    assert outcomes == {
        "test_ours[domain.probe]": "FAILED",
        "test_ours[serving.auth.probe]": "FAILED",
        "test_ours[sensors.probe]": "FAILED",
        "test_ours[tests.probe]": "FAILED",
        "test_a_library_warning_about_our_call": "FAILED",
        "test_a_library_of_its_own": "PASSED",
        "test_a_library_calling_a_library": "PASSED",
        "test_our_test_module_itself": "FAILED",
    }, done.stdout[-3000:]
    assert "DeprecationWarning: old API" in done.stdout
