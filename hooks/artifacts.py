"""Step 1 of the two-step build: the artifacts build.rs reads in
build-mode-prebuilt-artifacts.

From the vetted interpreter (both engines): its runtime (`runtime/lib`:
libpython and the standard library, see runtime.py), which makes the program
relocatable, and a pyo3 configuration file that links that copy of libpython;
step 2 gives cargo the file as PYO3_CONFIG_FILE. For pyembed also a
`default_python_config.rs` that is the project's own src/python_config.rs.

pyembed engine, first: PyOxidizer's `run-build-script` produces its own
artifacts from pyoxidizer.bzl, with a Python distribution it downloads. When
it is missing or fails (offline, for one), the local artifacts above are used.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from plumbum import local
from plumbum.commands.base import BaseCommand
from plumbum.commands.processes import CommandNotFound

from . import packages, runtime
from .interpreter import Interpreter
from .project import PYOXIDIZER_TIMEOUT, Project
from .report import HookError, code, note, say

CONFIG_RS = "default_python_config.rs"
PYO3_CONFIG = "pyo3-build-config-file.txt"
RUNTIME = "runtime"
ONEFILE = "onefile"  # the one-file build's own artifacts (hooks/onefile.py)
# What the relocatable folder's last assembly found and copied (hooks/bundle.py):
# kept, so a build with nothing changed writes no file of dist/ again.
BUNDLE = "bundle"
LOCAL_MARK = "// Written by tools/hooks (local artifacts)"  # CONFIG_RS's first words


class PyOxidizerFailed(HookError):
    """pyoxidizer ran and failed; `said` is the line of its output that says why."""

    def __init__(self, problem: str, fix: str, said: str) -> None:
        super().__init__(problem, fix)
        self.said = said


@dataclass(frozen=True)
class Artifacts:
    directory: Path
    provider: str  # "pyoxidizer" or "local"
    engine: str = "pyembed"
    # What is left to make, which cargo does not need (the runtime's standard
    # library and the app): run while cargo compiles (`produce(defer=True)`).
    rest: Callable[[], None] | None = field(default=None, compare=False, repr=False)

    @property
    def pyo3_config(self) -> Path:
        return self.directory / PYO3_CONFIG

    @property
    def runtime_lib(self) -> Path | None:
        """The lib/ folder a relocatable program carries, if the artifacts have one."""
        lib = self.directory / RUNTIME / "lib"
        return lib if lib.is_dir() else None

    @property
    def environment(self) -> dict[str, str]:
        """What cargo's environment needs for step 2. pyo3 is configured before
        build.rs runs, so only cargo's environment can point it at the
        artifacts' Python (PyOxidizer issues 476, 498)."""
        env = {"PYO3_CONFIG_FILE": str(self.pyo3_config)}
        if self.engine == "pyembed":
            env = {"PYOXIDIZER_ARTIFACT_DIR": str(self.directory), **env}
        return env


def pyoxidizer_exe(environ: Mapping[str, str] | None = None) -> str | None:
    """PYOXIDIZER_EXE, else `pyoxidizer` on PATH (what build.rs would run)."""
    env = os.environ if environ is None else environ
    if env.get("PYOXIDIZER_EXE"):
        return env["PYOXIDIZER_EXE"]
    try:
        return str(local.which("pyoxidizer"))
    except CommandNotFound:
        return None


def cargo_environment(project: Project, target: str, profile: str) -> dict[str, str]:
    """What cargo gives a build script, which `run-build-script` expects
    (`TARGET` is a triple, PyOxidizer issue 366)."""
    return {
        "CARGO_MANIFEST_DIR": str(project.root),
        "TARGET": target,
        "PROFILE": profile,
        "OUT_DIR": str(project.artifact_dir),
    }


def run_pyoxidizer(
    exe: str, project: Project, target: str, profile: str, timeout: float
) -> Artifacts:
    """`pyoxidizer --system-rust run-build-script build.rs`, as the seed describes."""
    env = cargo_environment(project, target, profile)
    try:
        project.artifact_dir.mkdir(parents=True, exist_ok=True)  # as cargo makes OUT_DIR
    except OSError as error:
        raise cannot_prepare(project.artifact_dir, error) from error
    say(f"Running {exe} run-build-script build.rs (TARGET={target}, PROFILE={profile}).")
    command = local[exe]["--system-rust", "run-build-script", "build.rs"]
    try:
        with local.cwd(project.root), local.env(**env):
            code, out, err = run_with_limit(command, timeout)
    except subprocess.TimeoutExpired as error:
        raise HookError(
            f"`{exe} run-build-script` did not finish within {timeout:.0f} s and was stopped.",
            "Raise the limit with --pyoxidizer-timeout SECONDS (or PYOXIDIZER_TIMEOUT), or "
            "use --artifacts local.",
        ) from error
    except OSError as error:
        raise HookError(
            f"`{exe}` cannot be run ({error.strerror or error}).",
            "Fix PYOXIDIZER_EXE or the PATH, or use --artifacts local.",
        ) from error
    if code != 0:
        said = first_error(err + out)
        raise PyOxidizerFailed(
            f"`pyoxidizer run-build-script` failed (exit status {code}): {said}"
            + ("" if said.endswith(".") else "."),
            "Offline, PyOxidizer cannot download its Python distribution; pyoxidizer.bzl "
            "shows how to use a local one (PYTHON_DIST_PATH).",
            said,
        )
    missing = [n for n in (CONFIG_RS, PYO3_CONFIG) if not (project.artifact_dir / n).is_file()]
    if missing:
        raise HookError(
            f"`pyoxidizer run-build-script` succeeded but wrote no {' or '.join(missing)} "
            f"into {env['OUT_DIR']}.",
            "Check that pyoxidizer.bzl still registers a target with default_build_script=True.",
        )
    return Artifacts(project.artifact_dir, "pyoxidizer")


def run_with_limit(command: BaseCommand, timeout: float) -> tuple[int, str, str]:
    """Run to completion, or stop it and everything it started after `timeout`.

    The command gets its own process group, so that a child holding its output
    open (a download, a compiler) cannot keep us waiting past the limit.
    """
    process = command.popen(
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=os.name == "posix"
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except BaseException:  # the limit, or Ctrl-C, which its own group no longer receives
        if os.name == "posix":
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
        process.communicate()
        raise
    return process.returncode, _text(out), _text(err)


def _text(data: bytes | str | None) -> str:
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data or ""


def first_error(output: str) -> str:
    """The line that says what went wrong, for a one-line report."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if line.lower().startswith("error"):
            return line[:300]
    return lines[-1][:300] if lines else "no output"


def write_local(
    project: Project, python: Interpreter, requirements: Path | None = None
) -> Artifacts:
    """The stand-in: the vetted interpreter's pyo3 configuration, and an
    interpreter configuration that is the project's own src/python_config.rs."""
    directory = project.artifact_dir
    config_rs = project.root / "src" / "python_config.rs"
    if not config_rs.is_file():
        raise HookError(
            f"{config_rs} is missing; the local artifacts reuse it.",
            "Restore it from version control, or `copier update` the project.",
        )
    prepare_directory(directory, keep={PYO3_CONFIG, CONFIG_RS, RUNTIME, BUNDLE})
    write_runtime(directory, python, packages.app_folder(project.root), requirements)
    write_if_changed(
        directory / CONFIG_RS,
        f"{LOCAL_MARK}: the project's own interpreter\n"
        f"// configuration, linking {python.describe}.\n"
        f"include!({rust_string(str(config_rs))});\n",
    )
    return Artifacts(directory, "local")


def rust_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def produce(
    project: Project,
    python: Interpreter | None,
    target: str,
    profile: str,
    mode: str = "auto",
    timeout: float = PYOXIDIZER_TIMEOUT,
    requirements: Path | None = None,
    defer: bool = False,
) -> Artifacts:
    """Artifacts into target/out: for pyembed, PyOxidizer's when it works, else
    the local stand-in; for pyo3, the vetted interpreter's configuration.

    `mode` is "auto", "pyoxidizer" (no fallback) or "local" (no PyOxidizer).
    `python` is the vetted interpreter, or None when it failed the check.
    With `defer` (pyo3), what cargo does not need is left to the artifacts'
    `rest`, for the caller to run while cargo compiles.
    """
    if project.engine == "pyo3":
        return write_pyo3(project, python, mode, requirements, defer)
    # PyOxidizer overwrites its files in target/out; the local stand-in removes
    # the others and rewrites its two only when they change, so that a build
    # with nothing changed recompiles nothing.
    exe = pyoxidizer_exe() if mode != "local" else None
    if exe:
        aside = set_local_aside(project.artifact_dir)
        try:
            made = run_pyoxidizer(exe, project, target, profile, timeout)
        except BaseException as error:  # a failure, or Ctrl-C: the local ones go back
            put_back(aside, project.artifact_dir)
            if mode == "pyoxidizer" or not isinstance(error, HookError):
                raise
            if isinstance(error, PyOxidizerFailed):
                note("PyOxidizer failed, so local artifacts are used instead. It said:")
                code(error.said)
            else:
                note(f"{error.problem} Local artifacts are used instead.")
        else:
            if aside is not None:
                remove(aside)
            return made
    elif mode == "pyoxidizer":
        raise HookError(
            "pyoxidizer is not installed (no PYOXIDIZER_EXE, no `pyoxidizer` on PATH).",
            "Install it with `pip install pyoxidizer==0.24.0`, or use --artifacts auto.",
        )
    elif mode == "auto":
        note("pyoxidizer is not installed (no PYOXIDIZER_EXE, no `pyoxidizer` on PATH).")
    if python is None:
        raise HookError(
            "The local artifacts need a usable Python, and the check above found none.",
            "Fix the problem it names, then run `python3 tools/hooks build` again.",
        )
    artifacts = write_local(project, python, requirements)
    note(f"Using local artifacts: the runtime of {python.describe}, carried by the program.")
    return artifacts


def set_local_aside(directory: Path) -> Path | None:
    """Move earlier local artifacts out of PyOxidizer's way, into a folder
    beside `directory`, which is returned.

    `run-build-script` takes any default_python_config.rs newer than
    pyoxidizer.bzl for its own and exits at once: it would pass the local
    artifacts off as PyOxidizer's, made for whatever Python they were made
    for. Moved, not removed: if PyOxidizer fails, `put_back` restores them
    with their time stamps, so cargo does not rebuild what did not change.
    """
    config = directory / CONFIG_RS
    try:
        if not config.is_file() or not config.read_text(encoding="utf-8").startswith(LOCAL_MARK):
            return None
        aside = directory.with_name(directory.name + ".local")
        remove(aside)
        aside.mkdir()
        for name in (CONFIG_RS, PYO3_CONFIG, RUNTIME):
            if (directory / name).exists():
                (directory / name).rename(aside / name)
    except OSError as error:
        raise cannot_prepare(directory, error) from error
    return aside


def put_back(aside: Path | None, directory: Path) -> None:
    """Undo `set_local_aside`, over whatever PyOxidizer left by those names."""
    if aside is None:
        return
    try:
        for entry in aside.iterdir():
            remove(directory / entry.name)
            entry.rename(directory / entry.name)
        aside.rmdir()
    except OSError as error:
        raise cannot_prepare(directory, error) from error


def remove(path: Path) -> None:
    """Remove a file or folder tree, if there is one."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    except OSError as error:
        raise cannot_prepare(path.parent, error) from error


def write_pyo3(
    project: Project,
    python: Interpreter | None,
    mode: str,
    requirements: Path | None = None,
    defer: bool = False,
) -> Artifacts:
    """The pyo3 engine's artifacts: the vetted interpreter's runtime and pyo3
    configuration, rewritten only when they change, so cargo's cache stays
    valid. With `defer`, the runtime's standard library and the app are left
    to the artifacts' `rest`."""
    if mode == "pyoxidizer":
        raise HookError(
            "--artifacts pyoxidizer needs the pyembed engine; this project uses pyo3.",
            "Use --artifacts auto (the default) or local.",
        )
    if python is None:
        raise HookError(
            "The artifacts need a usable Python, and the check above found none.",
            "Fix the problem it names, then run `python3 tools/hooks build` again.",
        )
    directory = project.artifact_dir
    prepare_directory(directory, keep={PYO3_CONFIG, RUNTIME, ONEFILE, BUNDLE})
    rest = start_runtime(directory, python, packages.app_folder(project.root), requirements)
    if not defer:
        rest()
        rest = None
    return Artifacts(directory, "local", engine="pyo3", rest=rest)


def write_runtime(
    directory: Path, python: Interpreter, app: Path | None, requirements: Path | None
) -> None:
    """The runtime, with the application (`app`, the project's python/
    folder) and the packages of `requirements` in its site-packages as they
    are now, and the pyo3 configuration that links its libpython."""
    start_runtime(directory, python, app, requirements)()


def start_runtime(
    directory: Path, python: Interpreter, app: Path | None, requirements: Path | None
) -> Callable[[], None]:
    """What cargo needs of the runtime: its libpython and the pyo3
    configuration that links it. A requirements file to install is read
    here, so that a line pip cannot take stops the build before cargo starts.
    Returns the rest (`finish_runtime`), which cargo does not need."""
    made = runtime.make_library(directory / RUNTIME, python)
    stamp = directory / RUNTIME / packages.STAMP
    given = packages.inputs(app, requirements, live_app=False)
    if requirements is not None and not packages.unchanged(stamp, python, given):
        packages.read_requirements(requirements)
    extra = []
    if python.sysroot:
        # A cross linker does not look in the target's library folders for the
        # libraries libpython needs (libz, libexpat), and checks libpython's
        # symbols against the cross toolchain's C library, which may be older
        # than the target's (Debian 12's 2.36 for sid's 3.14): the target's
        # loader resolves them at run time. build.rs passes these on.
        folders = runtime.sysroot_library_paths(python.sysroot)["conf"]
        extra.append(f"cargo:rustc-link-arg=-Wl,-rpath-link,{':'.join(folders)}")
        extra.append("cargo:rustc-link-arg=-Wl,--allow-shlib-undefined")
    write_if_changed(
        directory / PYO3_CONFIG, python.pyo3_config(lib_dir=str(made.lib), extra=extra)
    )
    return functools.partial(finish_runtime, directory, python, app, requirements)


def finish_runtime(
    directory: Path, python: Interpreter, app: Path | None, requirements: Path | None
) -> None:
    """The runtime's standard library, then the app and the packages of
    `requirements` in its site-packages, each only when it changed."""
    made = runtime.make_standard_library(directory / RUNTIME, python)
    site_packages = made.lib / made.python_dir / "site-packages"
    ran = packages.install(
        site_packages,
        python,
        app,
        requirements,
        recorded_as=f"lib/{made.python_dir}/site-packages",
        stamp=directory / RUNTIME / packages.STAMP,
    )
    what = " and ".join(
        text
        for text, given in ((f"the app ({app})", app), (f"{requirements}", requirements))
        if given
    )
    if ran:
        say(f"Installed {what} into {site_packages} with pip.")
    elif what:
        say(f"Nothing changed in {what} since the last build: not installed again.")


def write_if_changed(path: Path, text: str) -> None:
    """Write `text` unless the file already holds it: an unchanged file keeps
    its time stamp, and cargo does not rebuild what depends on it."""
    try:
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise cannot_prepare(path.parent, error) from error


def prepare_directory(directory: Path, keep: set[str]) -> None:
    """target/out with only the files named in `keep` left from earlier steps:
    stale PyOxidizer files must not mix with new ones."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for entry in directory.iterdir():
            if entry.name not in keep:
                remove(entry)
    except OSError as error:
        raise cannot_prepare(directory, error) from error


def cannot_prepare(directory: Path, error: OSError) -> HookError:
    return HookError(
        f"Cannot prepare {directory} for the artifacts ({error.strerror or error}).",
        "Make the project's target folder writable (or remove it), then run "
        "`python3 tools/hooks build` again.",
    )
