"""`copier copy --trust` with an interpreter that cannot be embedded: the
check says why and how to fix it, and every generated file stays (Copier would
delete a new project if the task failed)."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import FILES_BY_ENGINE, copy_cli, files, flat, missing, pyenv_python


def python_of(minor: str) -> Path:
    path = pyenv_python(minor)
    if path is None:
        missing(f"Python {minor} is not installed under ~/.pyenv/versions on this machine")
    return path


def non_executable(tmp_path: Path) -> Path:
    path = tmp_path / "python3"
    path.write_text("print('hi')\n")
    return path


def not_python(tmp_path: Path) -> Path:
    path = tmp_path / "python3"
    path.write_text("#!/bin/sh\necho 'not a python' >&2\nexit 1\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


RANGE = {"pyembed": "3.8 to 3.11", "pyo3": "3.9 to 3.15"}
OTHER = {"pyembed": "pyo3", "pyo3": "pyembed"}

# engine, case -> (the interpreter, what the error says, whether the other engine is offered)
CASES = {
    ("pyembed", "python-2.7"): (lambda tmp: python_of("2.7"), "older than 3.8", False),
    ("pyembed", "python-3.7"): (lambda tmp: python_of("3.7"), "older than 3.8", False),
    ("pyembed", "python-3.12"): (lambda tmp: python_of("3.12"), "newer than pyo3 0.17.3", True),
    ("pyembed", "python-3.13"): (lambda tmp: python_of("3.13"), "newer than pyo3 0.17.3", True),
    ("pyo3", "python-2.7"): (lambda tmp: python_of("2.7"), "older than 3.9", False),
    ("pyo3", "python-3.6"): (lambda tmp: python_of("3.6"), "older than 3.9", False),
    ("pyo3", "python-3.8"): (lambda tmp: python_of("3.8"), "older than 3.9", True),
    ("pyo3", "missing-path"): (lambda tmp: tmp / "no" / "python3", "does not exist", False),
    ("pyo3", "not-executable"): (non_executable, "is not an executable file", False),
    ("pyo3", "not-python"): (not_python, "did not run as Python: not a python", False),
}


@pytest.mark.parametrize(("engine", "case"), CASES, ids=[f"{e}-{c}" for e, c in CASES])
def test_a_refused_interpreter_keeps_every_generated_file(
    engine: str, case: str, tmp_path: Path
) -> None:
    make, says, other_engine = CASES[engine, case]
    python = make(tmp_path)
    dest = tmp_path / "demo"
    result = copy_cli(
        dest, "project_name=demo", f"engine={engine}", env={"PYO3_PYTHON": str(python)}
    )
    assert result.returncode == 0, result.stderr
    assert set(files(dest)) == FILES_BY_ENGINE[engine]
    error = flat(result.stderr)
    assert "error: The Python chosen because PYO3_PYTHON is set" in error
    assert str(python.parent) in error  # the interpreter's own path is named
    assert says in error
    # The fix names the supported range and an interpreter that would do.
    assert f"Set PYO3_PYTHON to a CPython {RANGE[engine]}" in error
    switch = f"copier update --trust --data engine={OTHER[engine]}"
    assert (switch in error) == other_engine
    out = flat(result.stdout)
    assert f"The project's files are all in place in {dest}" in out
    assert "python3 tools/hooks check" in out


@pytest.mark.parametrize(
    ("engine", "minor", "says"),
    [
        ("pyo3", "3.12", "pyo3 0.30.1 supports CPython 3.9 to 3.15: good."),
        ("pyembed", "3.9", "pyembed 0.24.0 supports CPython 3.8 to 3.11: good."),
    ],
)
def test_an_accepted_interpreter_is_reported_with_the_reason(
    engine: str, minor: str, says: str, tmp_path: Path
) -> None:
    python = python_of(minor)
    result = copy_cli(tmp_path / "demo", f"engine={engine}", env={"PYO3_PYTHON": str(python)})
    assert result.returncode == 0, result.stderr
    out = flat(result.stdout)
    assert f"Python: CPython {minor}." in out
    assert "chosen because PYO3_PYTHON is set" in out
    assert says in out


def test_the_check_can_be_rerun_inside_the_project_and_fails_by_exit_status(
    tmp_path: Path,
) -> None:
    dest = tmp_path / "demo"
    assert copy_cli(dest, "engine=pyembed").returncode == 0
    result = subprocess.run(
        [sys.executable, "tools/hooks", "check"],
        cwd=dest,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYO3_PYTHON": str(python_of("3.12"))},
        check=False,
    )
    assert result.returncode == 1
    assert "newer than pyo3 0.17.3" in flat(result.stderr)
