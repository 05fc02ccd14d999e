"""The README's Quick start: exactly two commands, which work on Debian's own
Python (PEP 668: `pip install` outside a virtual environment is refused) as
they do on a pyenv or virtualenv Python. They run in a Debian 12 root
(sidroot.DEBIAN_ROOT: python3, python3-venv, pipx, no pyenv) with a clean
environment, so nothing of this machine's Pythons can stand in."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from . import sidroot
from .conftest import ROOT, network_settings, working_tree


def quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]


def test_the_quick_start_has_exactly_two_commands_one_demo_one_tests() -> None:
    assert quick_start_commands() == ["pipx run nox -s demo", "pipx run nox -s tests"]


@pytest.mark.e2e
def test_the_quick_start_commands_work_on_debians_pep_668_python(
    debian_root: Path, cargo_target_root: Path, tmp_path: Path
) -> None:
    env = {
        **network_settings(),
        "PIPX_HOME": str(tmp_path / "pipx"),
        "PIPX_BIN_DIR": str(tmp_path / "pipx-bin"),
        "CARGO_TARGET_DIR": str(cargo_target_root / "debian-3.11"),
    }
    repo = working_tree(tmp_path / "repo")

    def inside(*argv: str | Path) -> subprocess.CompletedProcess[str]:
        return sidroot.run(debian_root, [str(arg) for arg in argv], cwd=repo, env=env)

    python3 = inside("python3", "-c", "import sys; print(sys.executable, sys.version.split()[0])")
    assert python3.returncode == 0, python3.stderr
    executable, version = python3.stdout.split()
    assert executable == "/usr/bin/python3"
    # What the Quick start avoids: pip refuses to install nox for this Python.
    refused = inside("python3", "-m", "pip", "install", "nox")
    assert refused.returncode != 0
    assert "externally-managed-environment" in refused.stdout + refused.stderr

    demo, tests = quick_start_commands()
    # The demo command as it is, into a folder of the test's.
    ran = inside(*demo.split(), "--", tmp_path / "demo")
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    # The program linked the root's own python3: it says that Python's version.
    assert re.search(rf"^Hello from Python {re.escape(version)}$", ran.stdout, re.MULTILINE), (
        ran.stdout[-3000:]
    )
    # The tests command installs its session under Debian's Python and runs
    # pytest (one fast test here: the whole suite is what CI runs).
    ran = inside(*tests.split(), "--", "tests/test_quick_start.py", "-k", "exactly_two")
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert "1 passed" in ran.stdout + ran.stderr
    # The session's virtual environment is Debian's Python's.
    venv = (repo / ".nox" / "tests" / "pyvenv.cfg").read_text()
    assert re.search(r"(?m)^home = /usr/bin$", venv), venv
