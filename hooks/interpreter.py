"""Find the Python the build will link, the way PyO3 does, and vet it.

pyo3-build-config (0.30 for the pyo3 engine, 0.17 for pyembed 0.24: the same
rule) picks, in order:
PYO3_PYTHON; the interpreter of an active virtualenv (VIRTUAL_ENV) or conda
environment (CONDA_PREFIX), ignoring both when both are set; then `python`,
then `python3` on PATH, whichever first reports "Python 3". We follow the same
rules so the check talks about the interpreter cargo will really link.

For a cross build (`--target` of another architecture or system), PyO3 takes
the target's Python from PYO3_CROSS_LIB_DIR, the target's library folder with
its `_sysconfigdata_*.py`; so do we (`find_cross`). That folder must be inside
the target's root folder (a sysroot, `SYSROOT/usr/lib`), whose interpreter the
hooks run under an emulator (CARGO_TARGET_<TRIPLE>_RUNNER, else qemu-user) to
probe it and compile its standard library.
"""

from __future__ import annotations

import ast
import functools
import os
import re
import shlex
import shutil
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from plumbum import local
from plumbum.commands.base import BaseCommand
from plumbum.commands.processes import CommandNotFound, ProcessTimedOut

from .project import Support, Version, dotted, newest, support_table
from .report import HookError, last_line

PROBE_TIMEOUT = 30.0

# Runs on the candidate interpreter; kept valid for Python 2 so that an old
# interpreter is reported as too old rather than as broken. It prints a dict's
# repr, read back with ast.literal_eval: importing json and platform (and with
# them re) made this Python answer in 35 ms instead of 21 (pyenv 3.11, -S).
PROBE = r"""
import os, struct, sys, sysconfig
var = sysconfig.get_config_var
base_prefix = getattr(sys, "base_prefix", sys.prefix)
impl = getattr(sys, "implementation", None)
print(repr({
    # The names platform.python_implementation() gives.
    "implementation": {"cpython": "CPython", "pypy": "PyPy", "graalpy": "GraalVM"}.get(
        impl.name, impl.name) if impl else sys.subversion[0],
    "version": list(sys.version_info[:3]),
    "executable": sys.executable,
    "base_prefix": base_prefix,
    "libdir": var("LIBDIR"),
    "ldversion": var("LDVERSION"),
    "instsoname": var("INSTSONAME"),
    "stdlib": sysconfig.get_path("stdlib"),
    "dynload": var("DESTSHARED"),
    # pyo3's rule: framework builds and conda's Pythons link their shared library.
    "shared": bool(var("Py_ENABLE_SHARED") or var("PYTHONFRAMEWORK")
                   or os.path.exists(os.path.join(base_prefix, "conda-meta"))),
    "pointer_width": struct.calcsize("P") * 8,
    "platform": sysconfig.get_platform(),
    "windows": os.name == "nt",
    "build_flags": [flag for flag in ("Py_DEBUG", "Py_REF_DEBUG", "Py_TRACE_REFS",
                                      "COUNT_ALLOCS") if var(flag) == 1],
    "free_threaded": var("Py_GIL_DISABLED") == 1,
}))
"""

PYO3_RULE = (
    "PyO3's rule: PYO3_PYTHON, else an active virtualenv or conda environment, "
    "else `python`, then `python3` on PATH"
)


@dataclass(frozen=True)
class Candidate:
    """An interpreter path and why it was chosen; `probed` is the probe's
    (exit status, stdout, stderr) when choosing it already ran the probe.

    A target's interpreter (cross builds) also has a `runner`, the command
    that runs it on this machine (an emulator), and a `sysroot`, the target's
    root folder: the absolute paths it reports are relative to it."""

    path: str
    reason: str
    probed: tuple[int, str, str] | None = field(default=None, compare=False, repr=False)
    runner: tuple[str, ...] = ()
    sysroot: str | None = None


@dataclass(frozen=True)
class Interpreter:
    """What a probe learned about one interpreter."""

    candidate: Candidate
    implementation: str
    version: Version
    executable: str
    base_prefix: str
    libdir: str | None
    ldversion: str | None
    shared: bool
    pointer_width: int
    platform: str
    windows: bool
    build_flags: list[str] = field(default_factory=list)
    free_threaded: bool = False
    instsoname: str | None = None  # the shared libpython's file name (its SONAME)
    stdlib: str | None = None  # the standard library's folder
    dynload: str | None = None  # the folder of its C extension modules

    @property
    def describe(self) -> str:
        return f"{self.implementation} {dotted(self.version)} ({self.executable})"

    @property
    def emulated(self) -> bool:
        """A target's interpreter, which this machine runs under an emulator."""
        return bool(self.candidate.runner)

    @property
    def sysroot(self) -> str | None:
        return self.candidate.sysroot

    @property
    def machine(self) -> str:
        """The CPU it runs on, as sysconfig names it ("x86_64", "aarch64")."""
        return self.platform.rpartition("-")[2]

    def command(self) -> BaseCommand:
        """The interpreter as a command to run here (under its emulator, if any)."""
        return _command(self.executable, self.candidate.runner)

    @property
    def lib_name(self) -> str:
        """The library name pyo3 links (pyo3-build-config's default_lib_name_*)."""
        major, minor = self.version[:2]
        if self.windows:
            return f"python{major}.{minor}" if "mingw" in self.platform else f"python{major}{minor}"
        if self.ldversion:
            return f"python{self.ldversion}"
        return f"python{major}.{minor}" if (major, minor) > (3, 7) else f"python{major}.{minor}m"

    @property
    def lib_dir(self) -> str | None:
        if self.windows:
            return str(Path(self.base_prefix) / "libs")
        return self.libdir

    def libpython(self) -> Path | None:
        """The library file the linker will find in lib_dir, if any."""
        if not self.lib_dir:
            return None
        if self.windows:
            names = [f"{self.lib_name}.lib"]
        else:
            shared = [f"lib{self.lib_name}.so", f"lib{self.lib_name}.dylib"]
            static = [f"lib{self.lib_name}.a"]
            names = shared + static if self.shared else static + shared
        if self.emulated and self.instsoname:
            # The two-step build links its own copy through a lib*.so link, so a
            # target's runtime library is enough (no -dev package in the sysroot).
            names.append(self.instsoname)
        for name in names:
            if (Path(self.lib_dir) / name).is_file():
                return Path(self.lib_dir) / name
        return None

    def pyo3_config(self, lib_dir: str | None = None, extra: Iterable[str] = ()) -> str:
        """The same `key=value` lines pyo3-build-config writes for this
        interpreter; `lib_dir` links a copy of its libpython instead, and
        `extra` are build-script lines (extra_build_script_line)."""
        lines = {
            "implementation": self.implementation,
            "version": f"{self.version[0]}.{self.version[1]}",
            "shared": str(self.shared or self.windows).lower(),
            "abi3": "false",
            "lib_name": self.lib_name,
            "lib_dir": lib_dir or self.lib_dir,
            "executable": self.executable,
            "pointer_width": str(self.pointer_width),
            "build_flags": ",".join(self.build_flags),
            "suppress_build_script_link_lines": "false",
        }
        return "".join(
            [f"{key}={value}\n" for key, value in lines.items() if value is not None]
            + [f"extra_build_script_line={line}\n" for line in extra]
        )


def find(environ: Mapping[str, str] | None = None) -> Candidate:
    """The interpreter pyo3 will pick with this environment."""
    env = os.environ if environ is None else environ
    if env.get("PYO3_PYTHON"):
        return Candidate(env["PYO3_PYTHON"], "PYO3_PYTHON is set")
    venv, conda = env.get("VIRTUAL_ENV"), env.get("CONDA_PREFIX")
    if venv and not conda:
        return Candidate(_env_python(venv, virtualenv=True), "a virtualenv is active (VIRTUAL_ENV)")
    if conda and not venv:
        return Candidate(_env_python(conda, virtualenv=False), "a conda environment is active")
    for name in ("python", "python3"):
        path = _which(name, env.get("PATH", ""))
        probed = _run_probe(path) if path else None
        if probed and _is_python3(probed):
            reason = f"it is the first `{name}` on PATH"
            if venv and conda:
                reason += " (VIRTUAL_ENV and CONDA_PREFIX are both set, so PyO3 ignores both)"
            return Candidate(path, reason, probed)
    raise HookError(
        "No Python 3 interpreter found: PYO3_PYTHON is not set, no virtualenv is active, "
        "and neither `python` nor `python3` on PATH is Python 3.",
        "Install CPython 3.9 or newer, or set PYO3_PYTHON to one.",
    )


# qemu-user's name for a Rust target's CPU, where the two differ.
QEMU_ARCH = {"i686": "i386", "i586": "i386", "powerpc64le": "ppc64le", "riscv64gc": "riscv64",
             "armv7": "arm", "arm": "arm"}  # fmt: skip
CROSS_FIX = (
    "Set PYO3_CROSS_LIB_DIR to the target's library folder inside its root folder (a "
    "sysroot: PYO3_CROSS_LIB_DIR=SYSROOT/usr/lib), as for PyO3's own cross builds; the "
    "README's \"Other targets\" shows how to make one from Debian's packages."
)


def find_cross(triple: str, environ: Mapping[str, str] | None = None) -> Candidate:
    """The target's Python for a cross build to `triple`, the way PyO3 takes
    one: PYO3_CROSS_LIB_DIR holds its `_sysconfigdata_*.py` (with several,
    PYO3_CROSS_PYTHON_VERSION picks one). Its interpreter, at its BINDIR in the
    sysroot, runs under CARGO_TARGET_<TRIPLE>_RUNNER, else qemu-user."""
    env = os.environ if environ is None else environ
    given = env.get("PYO3_CROSS_LIB_DIR")
    if not given:
        raise HookError(
            f"Building for {triple} needs that system's Python, and PYO3_CROSS_LIB_DIR is not set.",
            CROSS_FIX,
        )
    lib_dir = Path(given)
    found = sysconfigdata(lib_dir, triple.split("-")[0], env.get("PYO3_CROSS_PYTHON_VERSION"))
    variables = read_sysconfigdata(found)
    libdest = str(variables.get("LIBDEST") or "")
    sysroot = _sysroot_of(found.parent, libdest)
    if sysroot is None:
        raise HookError(
            f"PYO3_CROSS_LIB_DIR's {found} is not where that Python was built to live "
            f"({libdest}), under a root folder of the target system.",
            CROSS_FIX,
        )
    executable = on_host(f"{variables.get('BINDIR')}/python{variables.get('VERSION')}", sysroot)
    if not executable or not Path(executable).is_file():
        raise HookError(
            f"The target's Python in {sysroot} has no interpreter at {executable}: the "
            "build runs it to read its configuration and compile its standard library.",
            f"Add it to the sysroot (Debian: python{variables.get('VERSION')}-minimal).",
        )
    runner = target_runner(triple, sysroot, env)
    return Candidate(
        executable,
        f"PYO3_CROSS_LIB_DIR is set ({given}); it runs here under {Path(runner[0]).name}",
        runner=runner,
        sysroot=sysroot,
    )


def sysconfigdata(lib_dir: Path, arch: str, version: str | None) -> Path:
    """The target's `_sysconfigdata_*.py` in lib_dir or its python3.X folder,
    narrowed as PyO3 does: by the target's CPU, then PYO3_CROSS_PYTHON_VERSION."""
    if not lib_dir.is_dir():
        raise HookError(f"PYO3_CROSS_LIB_DIR is {lib_dir}, which is not a folder.", CROSS_FIX)
    found = sorted(
        path
        for pattern in ("_sysconfigdata_*.py", "python3*/_sysconfigdata_*.py")
        for path in lib_dir.glob(pattern)
        if not path.is_symlink()
    )
    if len(found) > 1:
        found = [path for path in found if arch in path.name] or found
    if version and len(found) > 1:
        found = [path for path in found if path.parent.name == f"python{version}"] or found
    if len(found) != 1:
        raise HookError(
            f"PYO3_CROSS_LIB_DIR ({lib_dir}) holds "
            + (
                f"several Pythons' _sysconfigdata_*.py: {', '.join(map(str, found))}."
                if found
                else "no _sysconfigdata_*.py, in it or in a python3.X folder of it."
            ),
            "Set PYO3_CROSS_PYTHON_VERSION to the one to link (such as 3.11)."
            if found
            else CROSS_FIX,
        )
    return found[0]


def read_sysconfigdata(path: Path) -> dict:
    """Its `build_time_vars`, read as a literal (the file is not run)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                isinstance(name, ast.Name) and name.id == "build_time_vars" for name in node.targets
            ):
                variables = ast.literal_eval(node.value)
                if isinstance(variables, dict):
                    return variables
    except (OSError, SyntaxError, ValueError) as error:
        raise HookError(f"Cannot read {path} ({error}).", CROSS_FIX) from error
    raise HookError(f"{path} has no build_time_vars.", CROSS_FIX)


def _sysroot_of(folder: Path, libdest: str) -> str | None:
    """The root folder where `folder` is the target's `libdest`."""
    if not libdest.startswith("/"):
        return None
    parts = Path(libdest).parts[1:]
    resolved = folder.resolve()
    if resolved.parts[-len(parts) :] != parts:
        return None
    return str(Path(*resolved.parts[: -len(parts)]))


def target_runner(triple: str, sysroot: str, environ: Mapping[str, str]) -> tuple[str, ...]:
    """How this machine runs the target's programs: Cargo's own
    CARGO_TARGET_<TRIPLE>_RUNNER, else qemu-user with the sysroot (-L)."""
    variable = f"CARGO_TARGET_{triple.upper().replace('-', '_')}_RUNNER"
    if environ.get(variable):
        return tuple(shlex.split(environ[variable]))
    arch = triple.split("-")[0]
    arch = QEMU_ARCH.get(arch, arch)
    # QEMU's default aarch64 CPU computes pointer authentication codes the
    # slow, architected way: CPython 3.14 built with them (Debian sid's)
    # compiled its standard library 9 times slower than with this choice.
    cpu = (
        ("-cpu", "max,pauth-impdef=on") if arch == "aarch64" and not environ.get("QEMU_CPU") else ()
    )
    for name in (f"qemu-{arch}-static", f"qemu-{arch}"):
        found = shutil.which(name, path=environ.get("PATH"))
        if found:
            return (found, *cpu, "-L", sysroot)
    raise HookError(
        f"The target's Python ({triple}) runs here only under an emulator, and neither "
        f"qemu-{arch}-static nor qemu-{arch} is on PATH.",
        "Install qemu-user (Debian/Ubuntu: apt install qemu-user-static), or name the "
        f"command that runs the target's programs in {variable}, as for cargo run.",
    )


def _env_python(prefix: str, virtualenv: bool) -> str:
    if sys.platform == "win32":
        return str(Path(prefix) / ("Scripts" if virtualenv else "") / "python.exe")
    return str(Path(prefix) / "bin" / "python")


def _which(name: str, path: str) -> str | None:
    with local.env(PATH=path):
        try:
            return str(local.which(name))
        except CommandNotFound:
            return None


def _run_probe(path: str) -> tuple[int, str, str] | None:
    """Run PROBE on an interpreter: (exit status, stdout, stderr), or None when
    it cannot run. Choosing `python` or `python3` as PyO3 does needs only the
    major version, which the probe reports too: one run instead of two (a
    pyenv shim costs a shell start each time)."""
    try:
        return local[path]["-S", "-c", PROBE].run(retcode=None, timeout=PROBE_TIMEOUT)
    except (OSError, ProcessTimedOut):
        return None


def _is_python3(probed: tuple[int, str, str]) -> bool:
    code, out, _ = probed
    data = _last_dict_line(out) if code == 0 else None
    return bool(data) and data["version"][0] == 3


def probe(candidate: Candidate) -> Interpreter:
    """Run the candidate once and read sys/sysconfig; refuse what is not a Python."""
    path = Path(candidate.path)
    who = f"The Python chosen because {candidate.reason}, {candidate.path},"
    fix = "Point PYO3_PYTHON at a CPython executable, for example /usr/bin/python3."
    if os.sep not in candidate.path and "/" not in candidate.path:
        found = _which(candidate.path, os.environ.get("PATH", ""))
        if not found:
            raise HookError(f"{who} is not on PATH.", fix)
        path = Path(found)
    if not path.exists():
        raise HookError(f"{who} does not exist.", fix)
    if not path.is_file() or not os.access(path, os.X_OK):
        raise HookError(f"{who} is not an executable file.", fix)
    try:
        if candidate.probed is not None:
            code, out, err = candidate.probed
        else:
            code, out, err = _command(str(path), candidate.runner)["-S", "-c", PROBE].run(
                retcode=None, timeout=PROBE_TIMEOUT
            )
    except ProcessTimedOut as error:
        raise HookError(f"{who} did not answer within {PROBE_TIMEOUT:.0f} s.", fix) from error
    except OSError as error:
        raise HookError(f"{who} cannot be run ({error.strerror or error}).", fix) from error
    data = _last_dict_line(out) if code == 0 else None
    if data is None:
        said = last_line(out, err)
        detail = f": {said}" if said else f" (exit status {code})"
        raise HookError(f"{who} did not run as Python{detail}.", fix)
    here = functools.partial(on_host, sysroot=candidate.sysroot)
    return Interpreter(
        candidate=candidate,
        implementation=data["implementation"],
        version=tuple(data["version"]),
        executable=here(data["executable"]) or str(path),
        base_prefix=here(data["base_prefix"]) or "",
        libdir=here(data["libdir"]),
        ldversion=data["ldversion"],
        shared=data["shared"],
        pointer_width=data["pointer_width"],
        platform=data["platform"],
        windows=data["windows"],
        build_flags=data["build_flags"],
        free_threaded=bool(data.get("free_threaded")),
        instsoname=data.get("instsoname"),
        stdlib=here(data.get("stdlib")),
        dynload=here(data.get("dynload")),
    )


def _command(executable: str, runner: tuple[str, ...] = ()) -> BaseCommand:
    if runner:
        return local[runner[0]][[*runner[1:], executable]]
    return local[executable]


def on_host(path: str | None, sysroot: str | None) -> str | None:
    """Where a path the target's interpreter reports is on this machine: its
    build-time paths (LIBDIR, DESTSHARED) are the target's, under `sysroot`."""
    if not path or not sysroot or not os.path.isabs(path):
        return path
    if Path(path) == Path(sysroot) or Path(sysroot) in Path(path).parents:
        return path
    return str(Path(sysroot) / Path(path).relative_to("/"))


def _last_dict_line(text: str) -> dict | None:
    """The probe's answer: the last line that is a dict's repr with a version."""
    for line in reversed(text.strip().splitlines()):
        try:
            data = ast.literal_eval(line)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            continue
        if isinstance(data, dict) and "version" in data:
            return data
    return None


def problems(python: Interpreter, support: Support, pointer_width: int | None) -> list[str]:
    """What makes this interpreter unusable for the build, one sentence each."""
    found = []
    if python.implementation != "CPython":
        found.append(
            f"it is {python.implementation}, but {support.name} embeds CPython only (it uses "
            "CPython's PyConfig initialization API)."
        )
    elif python.version[:2] < support.python_min:
        why = (
            "pyembed needs PyPreConfig and fails to compile with "
            '"could not find PyPreConfig in pyffi" (PyOxidizer issues 255 and 477).'
            if support.engine == "pyembed"
            else f"pyo3 {support.pyo3} refuses to build against it."
        )
        found.append(
            f"it is Python {dotted(python.version)}, older than {dotted(support.python_min)}: "
            + why
        )
    elif python.version[:2] > support.python_max:
        found.append(
            f"it is Python {dotted(python.version)}, newer than pyo3 {support.pyo3} (used by "
            f"{support.name}) knows: it would compile against the wrong "
            "struct layouts and misbehave at run time."
        )
    elif python.free_threaded and not support.free_threaded:
        found.append(
            f"it is a free-threaded build (Python {dotted(python.version)}t), which "
            f"{support.name} does not embed (hooks/support.yml says why)."
        )
    if not found and python.libpython() is None:
        wanted = f"lib{python.lib_name}.so or .a" if not python.windows else python.lib_name
        found.append(
            f"it has no libpython to link: no {wanted} in {python.lib_dir}. Install the "
            f"development files (Debian/Ubuntu: apt install lib{python.lib_name}-dev) or use a "
            "Python built with --enable-shared (pyenv: "
            "PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install VERSION)."
        )
    if pointer_width and python.pointer_width != pointer_width:
        found.append(
            f"it is a {python.pointer_width}-bit Python, but the Rust target is "
            f"{pointer_width}-bit."
        )
    return found


def vet(
    python: Interpreter,
    support: Support,
    pointer_width: int | None = None,
    alternatives: Iterable[Interpreter] = (),
) -> None:
    """Raise one paragraph naming the interpreter, what is wrong, and the fix."""
    found = problems(python, support, pointer_width)
    if not found:
        return
    raise HookError(
        f"The Python chosen because {python.candidate.reason}, {python.describe}, cannot "
        f"be embedded: {' Also, '.join(found)}",
        fix_text(support, alternatives, python),
    )


def other_engine(python: Interpreter, support: Support) -> Support | None:
    """Another engine that can embed this interpreter's version, if any."""
    if python.implementation != "CPython" or python.free_threaded:
        return None
    for engine, versions in support_table().items():
        row = newest(versions)
        if engine != support.engine and row.accepts(python.version):
            return row
    return None


def fix_text(
    support: Support, alternatives: Iterable[Interpreter], python: Interpreter | None = None
) -> str:
    if python is not None and python.emulated:
        return (
            f"Point PYO3_CROSS_LIB_DIR at a target's CPython {support.python_range} with its "
            f"libpython ({support.name} supports those)."
        )
    paths = [found.executable for found in alternatives]
    advice = (
        f"Set PYO3_PYTHON to a CPython {support.python_range} with its libpython "
        f"({support.name} supports those)"
    )
    if not paths:
        advice += (
            "; none is installed here: install one, for example with "
            f"`pyenv install 3.{support.python_max[1]}` or your system's "
            f"python3.{support.python_max[1]} and libpython3.{support.python_max[1]}-dev."
        )
    else:
        advice += (
            f", for example PYO3_PYTHON={paths[0]}"
            + (f" (also found: {', '.join(paths[1:])})" if len(paths) > 1 else "")
            + "."
        )
    other = other_engine(python, support) if python else None
    if other:
        advice += (
            f" Or keep this Python and switch to the {other.engine} engine ({other.name}, "
            f"CPython {other.python_range}): `copier update --trust --data engine={other.engine}`."
        )
    return advice


def installed(support: Support, environ: Mapping[str, str] | None = None) -> list[Interpreter]:
    """Compatible interpreters on this machine: python3.N on PATH and pyenv versions."""
    env = os.environ if environ is None else environ
    paths: list[Path] = []
    for directory in env.get("PATH", "").split(os.pathsep):
        if not directory or "shims" in Path(directory).parts:
            continue  # pyenv's shims only forward to the versions listed below
        for minor in range(support.python_min[1], support.python_max[1] + 1):
            paths.append(Path(directory) / f"python3.{minor}")
    pyenv_root = Path(env.get("PYENV_ROOT") or Path.home() / ".pyenv")
    for version_dir in sorted((pyenv_root / "versions").glob("3.*")):
        match = re.match(r"3\.(\d+)", version_dir.name)
        if match and support.accepts((3, int(match.group(1)))):
            paths.append(version_dir / "bin" / "python3")
    found: dict[str, Interpreter] = {}
    for path in paths:
        if not path.is_file():
            continue
        try:
            python = probe(Candidate(str(path), "it is installed"))
        except HookError:
            continue
        real = os.path.realpath(python.executable)
        if real not in found and not problems(python, support, None):
            found[real] = python
    return sorted(found.values(), key=lambda p: p.version, reverse=True)
