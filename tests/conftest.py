"""Shared helpers: render this template with Copier, run commands, build once.

Every render uses vcs_ref="HEAD" so Copier renders the working tree (with
uncommitted changes), not the newest git tag.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import copier
import pytest

ROOT = Path(__file__).resolve().parent.parent
PYENV_VERSIONS = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"


def render(dest: Path, data: dict[str, Any] | None = None, *, tasks: bool = False) -> Path:
    """`copier copy --defaults` of this repository into dest (tasks off unless asked)."""
    copier.run_copy(
        str(ROOT),
        str(dest),
        data={"project_name": "demo", **(data or {})},
        defaults=True,
        unsafe=True,
        vcs_ref="HEAD",
        skip_tasks=not tasks,
        quiet=True,
    )
    return dest


def copier_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """The real `copier` command line, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "copier", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def copy_cli(dest: Path, *data: str, env: dict[str, str] | None = None, trust: bool = True):
    """`copier copy [--trust] --defaults --vcs-ref=HEAD --data ... ROOT dest`."""
    args = ["copy", "--defaults", "--vcs-ref=HEAD"] + (["--trust"] if trust else [])
    for item in data:
        args += ["--data", item]
    return copier_cli(*args, str(ROOT), str(dest), env=env)


def files(project: Path) -> dict[str, bytes]:
    """Every file of a project (outside target/) with its content."""
    return {
        str(path.relative_to(project)): path.read_bytes()
        for path in sorted(project.rglob("*"))
        if path.is_file()
        and "target" not in path.relative_to(project).parts
        and "__pycache__" not in path.parts
    }


def flat(text: str) -> str:
    """Text with line wrapping undone, to find a sentence in a wrapped paragraph."""
    return " ".join(text.split())


def pyenv_python(minor: str) -> Path | None:
    """~/.pyenv/versions/<minor>.*/bin/python<minor>, if installed."""
    for version in sorted(PYENV_VERSIONS.glob(f"{minor}.*"), reverse=True):
        for name in (f"python{minor}", "python"):
            if (version / "bin" / name).is_file():
                return version / "bin" / name
    return None


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
             "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"},
    ).stdout  # fmt: skip


def commit_all(cwd: Path, message: str) -> None:
    git(cwd, "add", "-A")
    git(cwd, "commit", "-q", "-m", message)


def working_tree(dest: Path) -> Path:
    """This repository's files as they are now (tracked and new, not ignored)."""
    listed = git(ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)
    return dest


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This repository's working tree, committed in a scratch repository, so
    `copier update` finds the commit a project was made from."""
    repo = working_tree(tmp_path_factory.mktemp("template") / "repo")
    git(repo, "init", "-q")
    commit_all(repo, "snapshot")
    git(repo, "tag", "v99.0.0")
    return repo


GENERATED_FILES = {
    ".cargo/config.toml",
    ".copier-answers.yml",
    ".gitignore",
    "Cargo.lock",
    "Cargo.toml",
    "README.md",
    "build.rs",
    "demo-manifest.rc",
    "demo.exe.manifest",
    "pyoxidizer.bzl",
    "src/main.rs",
    "src/python_config.rs",
    "tools/hooks/__init__.py",
    "tools/hooks/__main__.py",
    "tools/hooks/artifacts.py",
    "tools/hooks/cargo.py",
    "tools/hooks/cli.py",
    "tools/hooks/interpreter.py",
    "tools/hooks/migrate.py",
    "tools/hooks/project.py",
    "tools/hooks/report.py",
    "tools/hooks/support.yml",
}


@pytest.fixture(scope="session")
def cargo_target_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One CARGO_TARGET_DIR root for every end-to-end build of the session, so
    crates compile once. PYEMBED_TEMPLATE_TARGET_DIR keeps it across runs."""
    given = os.environ.get("PYEMBED_TEMPLATE_TARGET_DIR")
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)
        return Path(given)
    return tmp_path_factory.mktemp("cargo-target")


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not on PATH; the end-to-end tests need it")
    return path
