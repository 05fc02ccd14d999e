"""Shared helpers: render this template with Copier, run commands, build once.

Every render uses vcs_ref="HEAD" so Copier renders the working tree (with
uncommitted changes), not the newest git tag.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import copier
import pexpect
import pytest
import yaml

from . import sidroot

ROOT = Path(__file__).resolve().parent.parent
PYENV_VERSIONS = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"


class _IgnoreIncludes(yaml.SafeLoader):
    """copier.yml with its `!include` documents left out."""


_IgnoreIncludes.add_constructor("!include", lambda loader, node: None)


def copier_settings() -> dict[str, Any]:
    """copier.yml's settings and questions, as one mapping."""
    documents = yaml.load_all((ROOT / "copier.yml").read_text(), Loader=_IgnoreIncludes)
    merged: dict[str, Any] = {}
    for document in documents:
        merged.update(document or {})
    return merged


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
    """Every file of a project (outside the build output, target/ and dist/)
    with its content."""
    return {
        str(path.relative_to(project)): path.read_bytes()
        for path in sorted(project.rglob("*"))
        if path.is_file()
        and not {"target", "dist"} & set(path.relative_to(project).parts[:1])
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
    """This repository's files as they are now (tracked and new, not ignored),
    copied into dest (over what is there)."""
    listed = git(ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            if target.is_symlink() or target.exists():
                target.unlink()
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


HOOK_FILES = {
    "tools/hooks/__init__.py",
    "tools/hooks/__main__.py",
    "tools/hooks/artifacts.py",
    "tools/hooks/bundle.py",
    "tools/hooks/cargo.py",
    "tools/hooks/cli.py",
    "tools/hooks/interpreter.py",
    "tools/hooks/migrate.py",
    "tools/hooks/packages.py",
    "tools/hooks/onefile.py",
    "tools/hooks/project.py",
    "tools/hooks/report.py",
    "tools/hooks/requirements.txt",
    "tools/hooks/runtime.py",
    "tools/hooks/standins/_blake2.py",
    "tools/hooks/support.yml",
    "tools/hooks/toolenv.py",
}
COMMON_FILES = {
    ".cargo/config.toml",
    ".github/workflows/ci.yml",
    ".github/workflows/release.yml",
    ".pre-commit-config.yaml",
    ".copier-answers.yml",
    ".gitignore",
    "Cargo.lock",
    "Cargo.toml",
    "README.md",
    "build.rs",
    "demo-manifest.rc",
    "demo.exe.manifest",
    "src/main.rs",
    # The application's home (python_package, "demo" by default).
    "python/pyproject.toml",
    "python/demo/__init__.py",
    "python/demo/__main__.py",
    *HOOK_FILES,
}
# The files of a project named "demo", by engine.
FILES_BY_ENGINE = {
    "pyo3": {
        *COMMON_FILES,
        "src/interpreter.rs",
        "src/lib.rs",
        "src/onefile.rs",
        "src/onefile_importer.py",
        "src/rust_module.rs",
        "tests/cli.rs",
        "tests/rust_calls_python.rs",
    },
    "pyembed": {*COMMON_FILES, "pyoxidizer.bzl", "src/python_config.rs", "src/python_start.rs"},
}
# The default engine's.
GENERATED_FILES = FILES_BY_ENGINE["pyo3"]


@pytest.fixture(scope="session")
def cargo_target_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One CARGO_TARGET_DIR root for every end-to-end build of the session, so
    crates compile once. RUST_EMBEDDED_PYTHON_TARGET_DIR keeps it across runs."""
    given = os.environ.get("RUST_EMBEDDED_PYTHON_TARGET_DIR")
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)
        return Path(given)
    return tmp_path_factory.mktemp("cargo-target")


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not on PATH; the end-to-end tests need it")
    return path


# ---- Building and running generated projects (end-to-end tests) ----


def cargo(project: Path, target_dir: Path, *args: str, env: dict[str, str] | None = None):
    """`cargo ARGS` in the project, with its own CARGO_TARGET_DIR; never raises."""
    require("cargo")
    return subprocess.run(
        ["cargo", *args],
        cwd=project,
        env={**os.environ, "CARGO_TARGET_DIR": str(target_dir), **(env or {})},
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )


def built(project: Path, target_dir: Path, *args: str, env: dict[str, str] | None = None) -> Path:
    """`cargo build ARGS`, which must succeed; returns the executable's path."""
    result = cargo(project, target_dir, "build", *args, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    return target_dir / "debug" / project.name


def run(binary: Path, *args: str, cwd: Path, stdin: str | None = None, env=None, status: int = 0):
    """Run the built program; it must exit with `status`."""
    cwd.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [str(binary), *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )
    assert result.returncode == status, (
        f"{binary} exit {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    return result


# ---- Where a Python lives: this machine (pyenv) or a Debian sid root ----

# In CI a missing prerequisite fails its test. The template's GitHub workflow
# runs on machines without pyenv or root, and opts out with
# RUST_EMBEDDED_PYTHON_SKIP_MISSING=1 (its tests are then skipped, saying so).
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes") and not os.environ.get(
    "RUST_EMBEDDED_PYTHON_SKIP_MISSING"
)
# CPython versions the sid root provides (tests/sidroot.py).
SID_MINORS = ("3.14", "3.15")


def missing(what: str) -> None:
    """A tool or interpreter a test needs is absent: a failure in CI, else a skip
    that says what is missing."""
    if IN_CI:
        pytest.fail(f"{what} (CI=true: a missing prerequisite fails the test)")
    pytest.skip(what)


@dataclass(frozen=True)
class Place:
    """A CPython to link (`python`, the PYO3_PYTHON value) and where cargo and
    the programs run: this machine, or inside the sid root (`root`)."""

    minor: str
    python: str
    root: Path | None = None

    def cargo(
        self, project: Path, target_dir: Path, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {"PYO3_PYTHON": self.python, **(env or {})}
        if self.root is None:
            return cargo(project, target_dir, *args, env=env)
        return sidroot.run(
            self.root,
            ["cargo", *args],
            cwd=project,
            env={"CARGO_TARGET_DIR": str(target_dir), **env},
        )

    def built(self, project: Path, target_dir: Path, *args: str) -> Path:
        result = self.cargo(project, target_dir, "build", *args)
        assert result.returncode == 0, result.stderr[-4000:]
        return target_dir / "debug" / project.name

    def run(
        self,
        argv: list[str],
        cwd: Path,
        stdin: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """A command, never raising on its exit status. On this machine it gets
        this process's environment plus `env`; in the root, a clean one plus `env`."""
        cwd.mkdir(parents=True, exist_ok=True)
        if self.root is not None:
            return sidroot.run(self.root, argv, cwd=cwd, env=env, stdin=stdin, timeout=300)
        return subprocess.run(
            argv,
            cwd=cwd,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, **(env or {})},
            check=False,
        )

    def run_bytes(
        self,
        argv: list[str],
        cwd: Path,
        stdin: bytes | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """`run`, with stdin, stdout and stderr as bytes, exactly as the
        command reads and writes them (no decoding, no newline translation)."""
        cwd.mkdir(parents=True, exist_ok=True)
        if self.root is not None:
            return sidroot.run_bytes(self.root, argv, cwd=cwd, env=env, stdin=stdin, timeout=300)
        return subprocess.run(
            argv,
            cwd=cwd,
            input=stdin,
            capture_output=True,
            timeout=300,
            env={**os.environ, **(env or {})},
            check=False,
        )

    def terminal(self, argv: list[str], cwd: Path, env: dict[str, str]) -> pexpect.spawn:
        """A command started on a pseudo-terminal of 80x24 (pexpect), as someone
        types it. Here and in the root alike, its environment is a clean one
        (HOME, PATH, LANG=C.UTF-8) plus `env`."""
        cwd.mkdir(parents=True, exist_ok=True)
        variables: dict[str, str] | None = {
            "HOME": str(cwd), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", **env
        }  # fmt: skip
        if self.root is not None:  # chroot's own environment is this process's
            argv, variables = sidroot.command(self.root, argv, cwd=cwd, env=variables), None
        return pexpect.spawn(argv[0], argv[1:], cwd=cwd, env=variables, encoding="utf-8",
                             timeout=60, dimensions=(24, 80))  # fmt: skip


@pytest.fixture(scope="session")
def sid_root(tmp_path_factory: pytest.TempPathFactory, cargo_target_root: Path) -> Iterator[Path]:
    """The sid root, made once (about a minute) and mounted for the session with
    the test folders and the shared CARGO_TARGET_DIR at the same paths."""
    if os.geteuid() != 0:
        missing("the sid root needs the root user (mount, chroot, debootstrap)")
    try:
        root = sidroot.ensure_root()
    except RuntimeError as error:
        missing(f"no sid root for CPython {' and '.join(SID_MINORS)}: {error}")
    with sidroot.mounted(root, [tmp_path_factory.getbasetemp(), cargo_target_root]):
        yield root


@pytest.fixture(scope="session")
def minimal_root() -> Path:
    """A minimal Debian 12 root (no Python, OpenSSL or SQLite), made once."""
    if os.geteuid() != 0:
        missing("the minimal Debian root needs the root user (mount, chroot, debootstrap)")
    try:
        return sidroot.ensure_root(sidroot.MINIMAL_ROOT, "bookworm", ())
    except RuntimeError as error:
        missing(f"no minimal Debian root: {error}")
        raise


@pytest.fixture(scope="session")
def minimal_sid_root() -> Path:
    """A minimal Debian sid root (no Python, OpenSSL or SQLite), made once: a
    target system for what the sid root's Pythons build. sid's apt brings
    OpenSSL's libraries; nothing runs apt there, so they are removed."""
    if os.geteuid() != 0:
        missing("the minimal sid root needs the root user (mount, chroot, debootstrap)")
    try:
        root = sidroot.ensure_root(sidroot.MINIMAL_SID_ROOT, "sid", ())
    except RuntimeError as error:
        missing(f"no minimal sid root: {error}")
        raise
    lib = root / "usr" / "lib" / "x86_64-linux-gnu"
    for library in [*lib.glob("libssl.so*"), *lib.glob("libcrypto.so*")]:
        library.unlink()
    shutil.rmtree(lib / "ossl-modules", ignore_errors=True)
    return root


@pytest.fixture(scope="session")
def debian_root(
    tmp_path_factory: pytest.TempPathFactory, cargo_target_root: Path
) -> Iterator[Path]:
    """Debian 12 with its python3, python3-venv and pipx (sidroot.DEBIAN_ROOT),
    made once and mounted for the session like the sid root."""
    if os.geteuid() != 0:
        missing("the Debian root needs the root user (mount, chroot, debootstrap)")
    try:
        root = sidroot.ensure_root(sidroot.DEBIAN_ROOT, "bookworm", sidroot.DEBIAN_PACKAGES)
    except RuntimeError as error:
        missing(f"no Debian root with python3 and pipx: {error}")
    with sidroot.mounted(root, [tmp_path_factory.getbasetemp(), cargo_target_root]):
        yield root


# The machine's settings for reaching PyPI (a proxy's certificate authority,
# say), passed into a Debian root, whose environment is otherwise clean: the
# root has this machine's CA bundle at the same path (sidroot.HOST_FILES).
NETWORK_VARIABLES = (
    "PIP_CERT", "PIP_INDEX_URL", "PIP_DEFAULT_TIMEOUT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE",
    "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy",
)  # fmt: skip


def network_settings() -> dict[str, str]:
    return {name: os.environ[name] for name in NETWORK_VARIABLES if os.environ.get(name)}


def place_of(minor: str, request: pytest.FixtureRequest) -> Place:
    """The Place of CPython `minor`: pyenv's, or the sid root's for 3.14+."""
    if minor in SID_MINORS:
        root = request.getfixturevalue("sid_root")
        found = sidroot.pythons(root).get(minor)
        if found is None:
            missing(f"the sid root has no python{minor}")
        return Place(minor, found, root)
    path = pyenv_python(minor)
    if path is None:
        missing(f"Python {minor} is not installed under ~/.pyenv/versions on this machine")
    return Place(minor, str(path))
