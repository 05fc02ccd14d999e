"""Finding the Python the build will link (PyO3's rules) and vetting it, with
the real interpreters of this machine (pyenv versions, the system Python)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hooks import interpreter
from hooks.interpreter import Candidate
from hooks.project import support_table
from hooks.report import HookError

from .conftest import missing, pyenv_python

PYEMBED = support_table()["pyembed"]["0.24.0"]
PYO3 = support_table()["pyo3"]["0.30.1"]
SUPPORT = PYEMBED  # the tests that do not depend on the engine use this one
ENGINES = {"pyembed": PYEMBED, "pyo3": PYO3}
# What each engine embeds, of the versions pyenv has here (3.14 and 3.15 are
# tested in a Debian sid root, tests/sidroot.py).
SUPPORTED = {
    "pyembed": ["3.8", "3.9", "3.10", "3.11"],
    "pyo3": ["3.9", "3.10", "3.11", "3.12", "3.13"],
}
REFUSED = {
    "pyembed": ["2.7", "3.6", "3.7", "3.12", "3.13"],
    "pyo3": ["2.7", "3.6", "3.7", "3.8"],
}
# The engine a refused version is pointed to, if one can embed it.
OTHER_ENGINE = {
    ("pyembed", "3.12"): "pyo3",
    ("pyembed", "3.13"): "pyo3",
    ("pyo3", "3.8"): "pyembed",
}


def installed_python(minor: str) -> Path:
    path = pyenv_python(minor)
    if path is None:
        missing(f"Python {minor} is not installed under ~/.pyenv/versions on this machine")
    return path


def link(directory: Path, name: str, target: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).symlink_to(target)
    return directory / name


def script(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.parametrize(
    ("engine", "minor"), [(e, m) for e, minors in SUPPORTED.items() for m in minors]
)
def test_supported_cpython_is_accepted(engine: str, minor: str) -> None:
    python = interpreter.probe(Candidate(str(installed_python(minor)), "PYO3_PYTHON is set"))
    assert python.implementation == "CPython"
    assert f"{python.version[0]}.{python.version[1]}" == minor
    assert python.libpython() is not None
    interpreter.vet(python, ENGINES[engine], pointer_width=64)


@pytest.mark.parametrize(
    ("engine", "minor"), [(e, m) for e, minors in REFUSED.items() for m in minors]
)
def test_unsupported_python_is_refused_with_the_range_and_the_other_engine_named(
    engine: str, minor: str
) -> None:
    support = ENGINES[engine]
    python = interpreter.probe(Candidate(str(installed_python(minor)), "PYO3_PYTHON is set"))
    with pytest.raises(HookError) as refused:
        interpreter.vet(python, support, 64, interpreter.installed(support))
    message = str(refused.value)
    assert f"Python {minor}." in message
    assert str(python.executable) in message
    assert f"CPython {support.python_range}" in message
    assert "PYO3_PYTHON=" in message  # the fix names a compatible interpreter
    if engine == "pyembed" and python.version[:2] < (3, 8):
        assert "PyPreConfig" in message
    elif python.version[:2] > support.python_max:
        assert f"pyo3 {support.pyo3}" in message
    other = OTHER_ENGINE.get((engine, minor))
    if other:
        assert f"copier update --trust --data engine={other}`" in message
    else:
        assert "--data engine=" not in message


def test_a_free_threaded_python_is_refused_by_the_pyo3_engine_and_no_engine_is_offered() -> None:
    # No free-threaded CPython is installed here; its probe differs only there.
    python = interpreter.probe(Candidate(str(installed_python("3.13")), "test"))
    free_threaded = type(python)(**{**python.__dict__, "free_threaded": True})
    with pytest.raises(HookError) as refused:
        interpreter.vet(free_threaded, PYO3, 64)
    message = str(refused.value)
    assert "it is a free-threaded build (Python 3.13.0t)" in message
    assert "--data engine=" not in message


def test_python_2_is_probed_rather_than_reported_as_broken() -> None:
    python = interpreter.probe(Candidate(str(installed_python("2.7")), "PYO3_PYTHON is set"))
    assert python.version[:2] == (2, 7)


def test_pyo3_python_wins_over_everything_else(tmp_path: Path) -> None:
    env = {"PYO3_PYTHON": "/opt/py/bin/python3", "VIRTUAL_ENV": str(tmp_path), "PATH": ""}
    assert interpreter.find(env) == Candidate("/opt/py/bin/python3", "PYO3_PYTHON is set")


def test_an_active_virtualenv_is_used_when_pyo3_python_is_unset(tmp_path: Path) -> None:
    base = installed_python("3.10")
    venv = tmp_path / "venv"
    subprocess.run([str(base), "-m", "venv", "--without-pip", str(venv)], check=True)
    env = {"VIRTUAL_ENV": str(venv), "PATH": os.environ["PATH"]}
    candidate = interpreter.find(env)
    assert candidate.path == str(venv / "bin" / "python")
    assert "virtualenv" in candidate.reason
    python = interpreter.probe(candidate)
    assert python.version[:2] == (3, 10)
    # The venv links its base installation's libpython.
    assert python.libpython() is not None
    assert str(python.libpython()).startswith(str(base.parent.parent))
    interpreter.vet(python, SUPPORT, 64)


def test_an_active_conda_environment_is_used_when_pyo3_python_is_unset() -> None:
    env = {"CONDA_PREFIX": "/opt/conda/envs/app", "PATH": ""}
    assert interpreter.find(env).path == "/opt/conda/envs/app/bin/python"


def test_virtualenv_and_conda_together_are_both_ignored_as_pyo3_does(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    link(bin_dir, "python", installed_python("3.9"))
    env = {"VIRTUAL_ENV": "/v", "CONDA_PREFIX": "/c", "PATH": str(bin_dir)}
    candidate = interpreter.find(env)
    assert candidate.path == str(bin_dir / "python")
    assert "ignores both" in candidate.reason


def test_python_comes_before_python3_on_path(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    link(bin_dir, "python", installed_python("3.8"))
    link(bin_dir, "python3", installed_python("3.10"))
    candidate = interpreter.find({"PATH": str(bin_dir)})
    assert candidate.path == str(bin_dir / "python")
    assert "`python`" in candidate.reason


def test_python_that_is_python_2_is_passed_over_for_python3(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    link(bin_dir, "python", installed_python("2.7"))
    link(bin_dir, "python3", installed_python("3.9"))
    assert interpreter.find({"PATH": str(bin_dir)}).path == str(bin_dir / "python3")


def test_no_python_at_all_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(HookError, match="No Python 3 interpreter found"):
        interpreter.find({"PATH": str(tmp_path)})


def test_a_missing_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(HookError, match="does not exist"):
        interpreter.probe(Candidate(str(tmp_path / "nope" / "python3"), "PYO3_PYTHON is set"))


def test_a_file_that_is_not_executable_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "python3"
    plain.write_text("not a program")
    with pytest.raises(HookError, match="not an executable file"):
        interpreter.probe(Candidate(str(plain), "PYO3_PYTHON is set"))


def test_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(HookError, match="not an executable file"):
        interpreter.probe(Candidate(str(tmp_path), "PYO3_PYTHON is set"))


def test_an_executable_that_is_not_python_is_refused(tmp_path: Path) -> None:
    fake = script(tmp_path / "python3", "#!/bin/sh\necho 'I am not Python' >&2\nexit 3\n")
    with pytest.raises(HookError, match="did not run as Python: I am not Python"):
        interpreter.probe(Candidate(str(fake), "PYO3_PYTHON is set"))


def test_an_executable_that_prints_junk_is_refused(tmp_path: Path) -> None:
    fake = script(tmp_path / "python3", "#!/bin/sh\necho hello\n")
    with pytest.raises(HookError, match="did not run as Python"):
        interpreter.probe(Candidate(str(fake), "PYO3_PYTHON is set"))


def test_a_python_without_libpython_is_refused_with_the_package_to_install(
    tmp_path: Path,
) -> None:
    python = interpreter.probe(Candidate(str(installed_python("3.11")), "test"))
    without = type(python)(**{**python.__dict__, "libdir": str(tmp_path)})
    found = interpreter.problems(without, SUPPORT, 64)
    assert len(found) == 1
    assert "no libpython to link" in found[0]
    assert "libpython3.11-dev" in found[0]
    assert "--enable-shared" in found[0]


def test_a_pointer_width_mismatch_is_refused() -> None:
    python = interpreter.probe(Candidate(sys.executable, "test"))
    found = interpreter.problems(python, SUPPORT, 32)
    assert any("64-bit Python, but the Rust target is 32-bit" in p for p in found)


def test_installed_lists_only_compatible_interpreters() -> None:
    for support in ENGINES.values():
        found = interpreter.installed(support)
        assert found, f"this machine has a CPython {support.name} embeds"
        for python in found:
            assert support.accepts(python.version)
        executables = [os.path.realpath(p.executable) for p in found]
        assert len(executables) == len(set(executables))


def test_pyo3_configuration_matches_what_pyo3_writes_for_the_same_interpreter() -> None:
    """pyo3-build-config 0.17's own output for pyenv 3.11 (its key order and format)."""
    path = installed_python("3.11")
    python = interpreter.probe(Candidate(str(path), "test"))
    prefix = Path(python.base_prefix)
    assert python.pyo3_config() == (
        "implementation=CPython\n"
        "version=3.11\n"
        "shared=true\n"
        "abi3=false\n"
        "lib_name=python3.11\n"
        f"lib_dir={prefix / 'lib'}\n"
        f"executable={python.executable}\n"
        "pointer_width=64\n"
        "build_flags=\n"
        "suppress_build_script_link_lines=false\n"
    )
