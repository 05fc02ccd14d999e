"""The README's Quick start: exactly two commands, which work on Debian's own
Python (PEP 668: `pip install` outside a virtual environment is refused) as
they do on a pyenv or virtualenv Python."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import ROOT, missing, working_tree

DEBIAN_PYTHON = Path("/usr/bin/python3")


def quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]


def test_the_quick_start_has_exactly_two_commands_one_demo_one_tests() -> None:
    assert quick_start_commands() == ["pipx run nox -s demo", "pipx run nox -s tests"]


def debian_pipx() -> str:
    """pipx for Debian's own Python, installed from Debian's packages if needed."""
    if not DEBIAN_PYTHON.is_file():
        missing(f"{DEBIAN_PYTHON} (Debian's own Python) is not on this machine")
    if not shutil.which("pipx", path="/usr/bin"):
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            missing("pipx is not installed, and apt-get cannot install it here (not root)")
        installed = subprocess.run(
            ["apt-get", "install", "-y", "-q", "pipx"],
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if installed.returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, check=False)
            installed = subprocess.run(
                ["apt-get", "install", "-y", "-q", "pipx"],
                env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
        assert installed.returncode == 0, installed.stdout + installed.stderr
    return "/usr/bin/pipx"


@pytest.mark.e2e
def test_the_quick_start_commands_work_on_debians_pep_668_python(tmp_path: Path) -> None:
    marker = list(DEBIAN_PYTHON.parent.parent.glob("lib/python3*/EXTERNALLY-MANAGED"))
    if not marker:
        missing("Debian's Python carries no EXTERNALLY-MANAGED marker on this machine")
    # What the Quick start avoids: pip refuses to install nox for this Python.
    refused = subprocess.run(
        [str(DEBIAN_PYTHON), "-m", "pip", "install", "nox"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode != 0
    assert "externally-managed-environment" in refused.stdout + refused.stderr

    pipx = debian_pipx()
    repo = working_tree(tmp_path / "repo")
    env = {
        **os.environ,
        "PIPX_HOME": str(tmp_path / "pipx"),
        "PIPX_BIN_DIR": str(tmp_path / "pipx-bin"),
        "PIPX_DEFAULT_PYTHON": str(DEBIAN_PYTHON),
    }
    demo, tests = quick_start_commands()
    # The demo command as it is, into a folder of the test's.
    ran = subprocess.run(
        [pipx, *demo.split()[1:], "--", str(tmp_path / "demo")],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert "Hello from Python" in ran.stdout + ran.stderr
    # The tests command installs its session under Debian's Python and runs
    # pytest (one fast test here: the whole suite is what CI runs).
    ran = subprocess.run(
        [pipx, *tests.split()[1:], "--", "tests/test_quick_start.py", "-k", "exactly_two"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert "1 passed" in ran.stdout + ran.stderr
    # The session's virtual environment is Debian's Python's.
    venv = (repo / ".nox" / "tests" / "pyvenv.cfg").read_text()
    assert re.search(r"(?m)^home = /usr/bin$", venv), venv
