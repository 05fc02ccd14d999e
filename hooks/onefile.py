"""One-file programs: `python3 tools/hooks build --onefile` (pyo3 engine, Linux).

    dist/NAME-VERSION-TARGET    one executable: the program with libpython
                                linked statically, and a payload appended

The payload holds what the folder program carries in lib/ (the same
selection of the standard library, what --requirements installs, and with
--portable the shared libraries the extension modules need), each entry
compressed with LZ4 on its own, and an index. The program reads it where
it is (src/onefile.rs and src/onefile_importer.py), so nothing is unpacked:

- Python code as compiled code objects (marshal), found through the index
  on import, one entry decompressed per module. The modules CPython
  imports while it starts (`encodings`, the importer) are frozen modules,
  stored uncompressed.
- Extension modules and libraries, loaded from memory files (memfd).
- Other files of packages (package data, .dist-info) for importlib.resources
  and importlib.metadata.

Steps: the artifacts of the folder build (target/out/runtime: the standard
library compiled, --requirements installed), then cargo with the `onefile`
feature and a pyo3 configuration that links the checked Python's static
libpython (in its own target folder, `onefile/`, so that switching between
the folder and the one file does not rebuild pyo3 each time), then the
payload and the file. Each is made again only when what it is made from
changed.
"""

from __future__ import annotations

import argparse
import json
import marshal
import os
import re
import shutil
import stat
import struct
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from plumbum import local
from plumbum.commands.processes import CommandNotFound

from . import artifacts as folder_artifacts
from . import cargo, runtime
from .artifacts import Artifacts, write_if_changed
from .interpreter import Interpreter
from .project import Project
from .report import HookError, alongside, code, last_line, say, step

MAGIC = b"ONEFILE1"
TRAILER = struct.Struct("<8s7Q")  # 64 bytes: see src/onefile.rs
FROZEN_ROW = struct.Struct("<4Q")
MODULE, PACKAGE, EXTENSION, NAMESPACE = range(4)  # as in src/onefile_importer.py
LZ4_LEVEL = 9  # high-compression level: 9 of 12; 12 compresses 1-2% better, 3x slower
IMPORTER = "src/onefile_importer.py"
# Compiled under importlib's own file name: CPython drops frames of that file
# from the tracebacks of failed imports, as it does importlib's own.
IMPORTER_FILENAME = "<frozen importlib._bootstrap_external>"
FORMAT = 4  # of the payload and what goes in it; a change makes every payload again
MIB = 1024 * 1024

# Run by the checked Python: what linking it statically takes, the modules
# CPython imports before the importer can run (with the options that change
# that list), the importer compiled, and the file names of extension modules.
PROBE = r"""
import _imp, importlib.machinery, importlib.util, json, os, subprocess, sys, sysconfig
var = sysconfig.get_config_var
importer, compiled = sys.argv[1], sys.argv[2]
with open(importer, encoding="utf-8") as stream:
    code = compile(stream.read(), sys.argv[3], "exec", dont_inherit=True)
import marshal
with open(compiled, "wb") as stream:
    stream.write(marshal.dumps(code))
# The site module runs as CPython starts it, but with no folder to look in:
# the .pth files of this Python's site-packages are not the program's.
LIST = '''import sys
if "-S" not in sys.argv:
    import site
    site.PREFIXES[:] = []
    site.ENABLE_USER_SITE = False
    site.main()
print(" ".join(sys.modules))'''
starting = set()
for options in ([], ["-X", "dev"], ["-X", "utf8"], ["-W", "error"], ["-X", "importtime"],
                ["-X", "tracemalloc"], ["-X", "faulthandler"], ["-S"], ["-E"]):
    ran = subprocess.run([sys.executable, "-I", "-S", *options, "-c", LIST, *options],
                         capture_output=True, text=True)
    starting.update(ran.stdout.split())
print(json.dumps({
    "hexversion": sys.hexversion,
    "starting": sorted(name for name in starting if name not in sys.builtin_module_names
                       and not _imp.is_frozen(name)),
    "extension_suffixes": importlib.machinery.EXTENSION_SUFFIXES,
    "libpl": var("LIBPL"), "libdir": var("LIBDIR"), "library": var("LIBRARY"),
    "ldversion": var("LDVERSION"),
    "link": " ".join(str(var(name) or "") for name in ("LIBS", "MODLIBS", "SYSLIBS")),
    "shared": bool(var("Py_ENABLE_SHARED")),
    "cflags": " ".join(str(var(name) or "") for name in ("CFLAGS", "CCSHARED", "PY_CFLAGS_NODIST")),
    "include": sorted({sysconfig.get_path("include"), sysconfig.get_path("platinclude")}),
    "openssl_hashes": importlib.util.find_spec("_hashlib") is not None,
    "libc": os.confstr("CS_GNU_LIBC_VERSION") if "CS_GNU_LIBC_VERSION" in os.confstr_names else "",
}))
"""
# Debian's packages of the static libraries Debian's libpython links
# (its built-in zlib, pyexpat and, from 3.15, _zstd modules).
DEV_PACKAGES = {"z": "zlib1g-dev", "expat": "libexpat1-dev", "zstd": "libzstd-dev"}
# Libraries every Linux program may take from the system: the C library's own.
C_LIBRARY = {"c", "m", "dl", "pthread", "rt", "util", "gcc_s", "resolv"}


@dataclass(frozen=True)
class Probed:
    hexversion: int
    starting: list[str]  # modules imported before the importer runs
    extension_suffixes: list[str]
    static_dir: Path
    static_name: str  # "python3.12" for libpython3.12.a
    system_libraries: list[str]  # -l names libpython.a needs
    importer_code: bytes
    # Built-in modules of the Python that the static library cannot link,
    # left out of the program (see complete_static_library).
    left_out: list[str] = field(default_factory=list)
    glibc: tuple[int, ...] = ()  # the C library's version, if it is glibc


@dataclass
class Part:
    """One kind of payload entry: how many, their size stored and unpacked."""

    count: int = 0
    stored: int = 0
    unpacked: int = 0

    def add(self, stored: int, unpacked: int) -> None:
        self.count += 1
        self.stored += stored
        self.unpacked += unpacked


@dataclass
class OneFile:
    path: Path
    parts: dict[str, Part]  # "modules", "extension modules", ... -> sizes
    program: int  # the executable without the payload
    libpython: int  # its share of the executable (text and data of libpython.a)
    needs: dict[str, list[str]]  # library -> the entries that need it from the system
    copied: list[str] = field(default_factory=list)  # with --portable


def refuse_unsupported(python: Interpreter, target: str) -> None:
    """A one-file program needs Linux (memfd, /proc/self/exe)."""
    if "-linux-" not in target or python.windows:
        raise HookError(
            f"--onefile makes Linux programs only (it loads from memfd_create files), and "
            f"the target is {target}.",
            "Build for Linux, or build that target without --onefile.",
        )


def probe(python: Interpreter, project: Project, scratch: Path) -> Probed:
    """What the checked Python says about itself (PROBE), and its static library."""
    importer = project.root / IMPORTER
    if not importer.is_file():
        raise HookError(
            f"{importer} is missing; a one-file program imports its modules with it.",
            "Restore it from version control, or `copier update` the project.",
        )
    scratch.mkdir(parents=True, exist_ok=True)
    compiled = scratch / "importer.marshal"
    command = local[python.executable]["-I", "-c", PROBE, str(importer), str(compiled),
                                       IMPORTER_FILENAME]  # fmt: skip
    code, out, err = command.run(retcode=None, timeout=300)
    if code != 0:
        raise HookError(
            f"{python.describe} could not compile {IMPORTER} or describe itself: "
            f"{last_line(out, err)}",
            f"Check that {IMPORTER} is the template's (git diff), then run the build again.",
        )
    found = json.loads(out.strip().splitlines()[-1])
    static_dir, static_name = static_library(python, found)
    archive, left_out = complete_static_library(
        python, static_dir / f"lib{static_name}.a", found, scratch
    )
    return Probed(
        hexversion=found["hexversion"],
        starting=found["starting"],
        extension_suffixes=found["extension_suffixes"],
        static_dir=archive.parent,
        static_name=static_name,
        system_libraries=link_names(found["link"]),
        importer_code=compiled.read_bytes(),
        left_out=left_out,
        glibc=glibc_version(found.get("libc", "")),
    )


def glibc_version(said: str) -> tuple[int, ...]:
    """(2, 36) of "glibc 2.36" (os.confstr's CS_GNU_LIBC_VERSION), else ()."""
    name, _, version = said.partition(" ")
    numbers = version.split(".")[:2]
    return tuple(map(int, numbers)) if name == "glibc" and all(map(str.isdigit, numbers)) else ()


def static_library(python: Interpreter, found: dict) -> tuple[Path, str]:
    """The folder and -l name of the checked Python's static libpython,
    position-independent (Rust links position-independent executables)."""
    version = f"{python.version[0]}.{python.version[1]}"
    name = f"python{found['ldversion'] or version}"
    folders = [Path(folder) for folder in (found["libpl"], found["libdir"]) if folder]
    position_independent = found["shared"] or "-fPIC" in found["cflags"].split()
    for folder in folders:
        # Debian builds a PIC copy for embedding beside the one its python3 uses.
        if (folder / f"lib{name}-pic.a").is_file():
            return folder, f"{name}-pic"
    for folder in folders:
        if (folder / f"lib{name}.a").is_file():
            if not position_independent:
                raise HookError(
                    f"--onefile needs a position-independent lib{name}.a (CPython's configure "
                    f"--enable-shared, or CFLAGS=-fPIC, makes one), and {python.describe}'s "
                    f"({folder}) is not.",
                    "Use a Python built so (pyenv: PYTHON_CONFIGURE_OPTS=--enable-shared pyenv "
                    "install VERSION), or build without --onefile.",
                )
            return folder, name
    raise HookError(
        f"--onefile needs lib{name}.a (Debian, Ubuntu: package lib{name}-dev), and "
        f"{python.describe} has none.",
        "Install it, or use a Python whose configure did not get --without-static-libpython "
        "(pyenv's have one; `python3 tools/hooks check` lists the installed Pythons), or build "
        "without --onefile.",
    )


# Built-in modules a static libpython may lack the code of (Debian's 3.14
# and later: CPython's HACL* hash functions, Modules/_hacl, in no package).
# The one file leaves them out: hashlib then takes MD5, SHA-1, SHA-2 and
# SHA-3 from OpenSSL (_hashlib), as python does whenever it has OpenSSL,
# and BLAKE2, which hashlib takes only from CPython's own code, from a
# pure-Python stand-in of the same interface (hooks/standins/_blake2.py).
LEAVABLE = {"_md5", "_sha1", "_sha2", "_sha3", "_blake2"}
STAND_INS = Path(__file__).resolve().parent / "standins"
STATIC_FORMAT = 1  # of the completed copy; a change makes it again


def archive_symbols(archive: Path) -> dict[str, tuple[set[str], set[str]]] | None:
    """Per member of a static library, the symbols it defines and those it
    calls, read with binutils' nm (the C toolchain's); None without nm."""
    try:
        nm = local[str(local.which("nm"))]
    except CommandNotFound:
        return None
    _, out, _ = nm["-A", "--format=posix", str(archive)].run(retcode=None, timeout=300)
    members: dict[str, tuple[set[str], set[str]]] = {}
    prefix = f"{archive}["
    for line in out.splitlines():
        if not line.startswith(prefix):
            continue
        member, _, rest = line[len(prefix) :].partition("]: ")
        parts = rest.split()
        if len(parts) >= 2:
            defined, undefined = members.setdefault(member, (set(), set()))
            (undefined if parts[1] == "U" else defined).add(parts[0])
    return members


def complete_static_library(
    python: Interpreter, archive: Path, found: dict, scratch: Path
) -> tuple[Path, list[str]]:
    """The static library to link, and the built-in modules left out of it.

    A static libpython must define what it calls of CPython itself
    (functions named _Py*, Py*). Where it does not, and only built-in
    modules of LEAVABLE call what is missing, a copy without them is made in
    `scratch` (binutils' ar; config.o, CPython's table of built-in modules,
    compiled again from the Python's own config.c without their lines) and
    linked instead. Anything else missing is refused: the link would fail.
    The answer is kept per archive and modification time."""
    record = scratch / "static-check.json"
    key = f"{STATIC_FORMAT}:{archive}:{archive.stat().st_mtime_ns}"
    known = json.loads(record.read_text(encoding="utf-8")) if record.is_file() else {}
    if key in known and (not known[key]["left_out"] or Path(known[key]["archive"]).is_file()):
        return Path(known[key]["archive"]), known[key]["left_out"]
    members = archive_symbols(archive)
    if members is None:
        return archive, []  # without nm, the linker says what is missing
    defined = set().union(*(symbols for symbols, _ in members.values()))
    missing = sorted({name for _, calls in members.values() for name in calls
                      if name.startswith(("_Py", "Py")) and name not in defined})  # fmt: skip
    made, left_out = archive, []
    if missing:
        made, left_out = leave_out_modules(python, archive, members, missing, found, scratch)
    record.write_text(json.dumps({key: {"archive": str(made), "left_out": left_out}}),
                      encoding="utf-8")  # fmt: skip
    return made, left_out


def leave_out_modules(
    python: Interpreter,
    archive: Path,
    members: dict[str, tuple[set[str], set[str]]],
    missing: list[str],
    found: dict,
    scratch: Path,
) -> tuple[Path, list[str]]:
    """The copy of `archive` without the built-in modules that call what it
    lacks (complete_static_library), and their names."""
    culprits = sorted(member for member, (_, calls) in members.items() if calls & set(missing))
    modules = sorted(name[len("PyInit_") :] for member in culprits for name in members[member][0]
                     if name.startswith("PyInit_"))  # fmt: skip
    # Nothing but the table of built-in modules may call the members left out.
    theirs = set().union(*(members[member][0] for member in culprits))
    callers = sorted(
        member
        for member, (_, calls) in members.items()
        if member not in culprits and member != "config.o" and calls & theirs
    )
    hacl = all("Hacl" in name for name in missing)
    config_c = Path(found["libpl"] or "") / "config.c"
    why = (
        f"{python.describe}'s static library {archive} is incomplete: it calls "
        f"{len(missing)} CPython functions it does not define ({', '.join(missing[:2])}, ...)"
        + (", CPython's HACL* hash code, which Debian does not ship" if hacl else "")
    )
    fix = ("Use a CPython built from source (pyenv install 3.X) for --onefile, or build the "
           "folder program without --onefile.")  # fmt: skip
    if (len(modules) != len(culprits) or not set(modules) <= LEAVABLE or callers
            or "config.o" not in members):  # fmt: skip
        raise HookError(why + ", so no program can link it.", fix)
    if not config_c.is_file():
        raise HookError(why + f"; leaving out {', '.join(modules)} needs its config.c, and "
                        f"{config_c} is missing.", fix)  # fmt: skip
    if not found["openssl_hashes"]:
        raise HookError(why + f"; leaving out {', '.join(modules)} needs OpenSSL's hashes "
                        "(the _hashlib module), and this Python has none.", fix)  # fmt: skip
    try:
        ar, cc = (local[str(local.which(tool))] for tool in ("ar", "cc"))
    except CommandNotFound as error:
        raise HookError(why + f"; leaving out {', '.join(modules)} needs binutils' ar and a C "
                        f"compiler, and {error.program} is missing.", fix) from None  # fmt: skip
    folder = scratch / "static"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    partial = folder / (archive.name + ".partial")
    shutil.copyfile(archive, partial)
    table = folder / "config.c"
    pattern = re.compile(r"\bPyInit_(" + "|".join(map(re.escape, modules)) + r")\b")
    lines = config_c.read_text(encoding="utf-8").splitlines(keepends=True)
    table.write_text("".join(line for line in lines if not pattern.search(line)), encoding="utf-8")
    includes = [f"-I{path}" for path in found["include"]]
    commands = (
        ar[["d", str(partial), *culprits, "config.o"]],
        cc[["-c", "-O2", "-fPIC", *includes, "-o", str(folder / "config.o"), str(table)]],
        ar["rs", str(partial), str(folder / "config.o")],
    )
    for command in commands:
        code, out, err = command.run(retcode=None, timeout=300)
        if code != 0:
            raise HookError(why + f"; leaving out {', '.join(modules)} failed: "
                            f"{last_line(out, err)}", fix)  # fmt: skip
    made = folder / archive.name
    partial.replace(made)
    return made, modules


def link_names(flags: str) -> list[str]:
    """The -l names of a link line such as sysconfig's LIBS, in order, once each."""
    names: list[str] = []
    for word in flags.split():
        if word.startswith("-l") and word[2:] not in names:
            names.append(word[2:])
    return names


def pyo3_config(python: Interpreter, probed: Probed, portable: bool) -> str:
    """A pyo3 configuration that links the static libpython, whole: extension
    modules call functions nothing in the program itself calls. pyo3's own
    link line is replaced by these (its static one would drop those)."""
    lines = [
        "implementation=CPython",
        f"version={python.version[0]}.{python.version[1]}",
        "shared=false",
        "abi3=false",
        f"lib_name={probed.static_name}",
        f"lib_dir={probed.static_dir}",
        f"executable={python.executable}",
        f"pointer_width={python.pointer_width}",
        f"build_flags={','.join(python.build_flags)}",
        "suppress_build_script_link_lines=true",
        f"extra_build_script_line=cargo:rustc-link-search=native={probed.static_dir}",
        "extra_build_script_line=cargo:rustc-link-lib=static:+whole-archive,-bundle="
        + probed.static_name,
    ]
    if probed.glibc >= (2, 36) and not python.sysroot:
        # libpython's data holds some 40,000 pointers, each relocated at
        # start: packed (DT_RELR, which glibc reads from 2.36 on) their table
        # takes 20 KB instead of 900. The program then starts with glibc
        # 2.36 or newer, as any program runs with the glibc it was built
        # with or newer; an older one refuses it by name (GLIBC_ABI_DT_RELR).
        lines.append("extra_build_script_line=cargo:rustc-link-arg=-Wl,-z,pack-relative-relocs")
    for name in probed.system_libraries:
        # --portable: what libpython.a needs beyond the C library is linked
        # in too (Debian's: zlib and expat), so the program needs nothing else.
        archive = static_archive(name) if portable and name not in C_LIBRARY else None
        if archive is not None:
            lines.append(f"extra_build_script_line=cargo:rustc-link-search=native={archive.parent}")
            lines.append(f"extra_build_script_line=cargo:rustc-link-lib=static:-bundle={name}")
        elif portable and name not in C_LIBRARY:
            package = DEV_PACKAGES.get(name, f"the -dev package of lib{name}")
            raise HookError(
                f"--portable links lib{name} into the one-file program (its libpython needs "
                f"it), and this machine has no static lib{name}.a.",
                f"Install the development package that holds lib{name}.a (Debian, Ubuntu: "
                f"{package}), or build without --portable.",
            )
        else:
            lines.append(f"extra_build_script_line=cargo:rustc-link-lib={name}")
    return "".join(line + "\n" for line in lines)


def static_archive(name: str) -> Path | None:
    """lib{name}.a where the C compiler finds it, if it does."""
    try:
        cc = local[str(local.which("cc"))]
    except CommandNotFound:
        return None
    code, out, _ = cc["-print-file-name=lib" + name + ".a"].run(retcode=None)
    path = Path(out.strip())
    return path if code == 0 and path.is_absolute() and path.is_file() else None


class OneFileArtifacts(Artifacts):
    """The one file's pyo3 configuration, and cargo's own target folder for it."""

    target_dir: Path = Path()

    @property
    def environment(self) -> dict[str, str]:
        return {"PYO3_CONFIG_FILE": str(self.pyo3_config), "CARGO_TARGET_DIR": str(self.target_dir)}


def artifacts(project: Project, python: Interpreter, probed: Probed, portable: bool) -> Artifacts:
    directory = project.artifact_dir / folder_artifacts.ONEFILE
    directory.mkdir(parents=True, exist_ok=True)
    made = OneFileArtifacts(directory, "local", engine="pyo3")
    target = Path(os.environ.get("CARGO_TARGET_DIR") or project.root / "target")
    object.__setattr__(made, "target_dir", target / "onefile")
    write_if_changed(made.pyo3_config, pyo3_config(python, probed, portable))
    return made


# ---- The payload ----


@dataclass
class Contents:
    """What goes into the payload, read from the runtime's lib/ folder."""

    code: list[str] = field(default_factory=list)  # relative paths of .pyc and .py files
    extensions: dict[str, Path] = field(default_factory=dict)  # relative path -> file
    files: dict[str, Path] = field(default_factory=dict)  # relative path -> file
    libraries: dict[str, Path] = field(default_factory=dict)  # file name (SONAME) -> file
    stand_ins: dict[str, Path] = field(default_factory=dict)  # relative path -> source


def collect(home: Path, python_dir: str, probed: Probed) -> Contents:
    """Every module, extension module, data file and library below home/lib/python3.X."""
    contents = Contents()
    stdlib = home / "lib" / python_dir
    suffixes = sorted(probed.extension_suffixes, key=len, reverse=True)
    for path in sorted(stdlib.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts:
            continue
        relative = path.relative_to(home).as_posix()
        folder, _, name = relative.rpartition("/")
        if name.endswith(".pyc") or name.endswith(".py"):
            if name.endswith(".py") and path.with_suffix(".pyc").is_file():
                continue  # compiled beside it
            contents.code.append(relative)
        elif any(name.endswith(suffix) for suffix in suffixes) and importable(folder):
            contents.extensions[relative] = path
        elif is_elf(path):
            contents.libraries[name] = path  # a wheel's .libs, say
        else:
            contents.files[relative] = path
    return contents


def importable(folder: str) -> bool:
    """Whether an extension module in `folder` can be imported: not one of
    the libraries in a wheel's NAME.libs folder."""
    return not folder.rpartition("/")[2].endswith(".libs")


def is_elf(path: Path) -> bool:
    with path.open("rb") as stream:
        return stream.read(4) == b"\x7fELF"


def compile_sources(python: Interpreter, home: Path, stage: Path, contents: Contents) -> None:
    """The modules that are sources (pip installs sources into site-packages)
    compiled in a copy in `stage`, by the checked Python: compiled code is
    read only by the Python version that wrote it. A file that does not
    compile (compileall says which) is left out."""
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    sources = [relative for relative in contents.code if relative.endswith(".py")]
    for relative in sources:
        target = stage / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(contents.stand_ins.get(relative, home / relative), target)
    if sources:
        # Named by their path in the home (-s): the payload holds no folder
        # of this machine, and the importer names them below the program.
        command = local[python.executable]["-I", "-m", "compileall", "-q", "-b", "-o", "0",
                                           "-s", str(stage), str(stage)]  # fmt: skip
        command.run(retcode=None, timeout=1800)


class Writer:
    """The payload, entry by entry, in memory."""

    def __init__(self) -> None:
        self.data = bytearray()

    def raw(self, data: bytes) -> int:
        offset = len(self.data)
        self.data += data
        return offset

    def entry(self, compressed: bytes, data: bytes) -> tuple[int, int, int]:
        """(offset, stored size, size): stored as it is when LZ4 does not help."""
        stored = compressed if len(compressed) < len(data) else data
        return self.raw(stored), len(stored), len(data)


def lz4_compress() -> object:
    try:
        import lz4.block
    except ImportError:
        raise HookError(
            f"--onefile compresses the program's payload with LZ4, and {sys.executable} lacks "
            "the lz4 module.",
            runtime.AGAIN,
        ) from None

    def compress(data: bytes) -> bytes:
        return lz4.block.compress(
            data, mode="high_compression", compression=LZ4_LEVEL, store_size=False
        )

    return compress


def write_payload(
    home: Path,
    python_dir: str,
    probed: Probed,
    contents: Contents,
    staged: Path,
    needs: dict[str, tuple[str, ...]],
    out: Path,
) -> dict[str, Part]:
    """The payload file; returns the size of each part."""
    compress = lz4_compress()
    writer = Writer()
    names = ("modules", "start-up modules", "extension modules", "libraries", "files", "index")
    parts = {name: Part() for name in names}
    stdlib = f"lib/{python_dir}"
    folders: dict[str, dict[str, tuple]] = {stdlib: {}}

    def folder_of(relative: str) -> dict[str, tuple]:
        """The index's folder, its parents made namespace packages where they
        are no packages (the folders below site-packages a wheel adds)."""
        if relative not in folders:
            folders[relative] = {}
            parent, _, name = relative.rpartition("/")
            if parent and parent.startswith(stdlib) and parent != stdlib:
                folder_of(parent).setdefault(name, (NAMESPACE,))
        return folders[relative]

    # Code: frozen (uncompressed, for CPython's table) or in the index.
    frozen_names = starting_modules(contents, probed, stdlib)
    code: dict[str, tuple[str, bool, bytes]] = {}  # relative path -> (module name, package, code)
    for relative in contents.code:
        source = staged / relative if relative.endswith(".py") else home / relative
        compiled = source.with_suffix(".pyc")
        if not compiled.is_file():
            continue  # did not compile (compileall said why)
        data = compiled.read_bytes()[16:]  # the .pyc header, then marshal data
        name = module_name(relative, stdlib)
        package = relative.rsplit("/", 1)[-1].startswith("__init__.")
        code[relative] = (name, package, data)
    frozen: list[tuple[str, bool, int, int]] = []
    pending = []
    for relative, (name, package, data) in sorted(code.items()):
        folder = relative.rsplit("/", 1)[0]
        if package:
            folder, _, tail = folder.rpartition("/")
            folder_of(relative.rsplit("/", 1)[0])
        else:
            tail = relative.rsplit("/", 1)[1].rsplit(".", 1)[0]
        kind = PACKAGE if package else MODULE
        if name in frozen_names and name:
            data = (staged / "frozen" / name).read_bytes()  # named <frozen NAME>
            offset = writer.raw(data)
            parts["start-up modules"].add(len(data), len(data))  # stored as they are
            frozen.append((name, package, offset, len(data)))
            folder_of(folder)[tail] = (kind, offset, len(data), len(data))
        else:
            pending.append((folder, tail, kind, data))
    frozen.append(("_onefile_importer", False, writer.raw(probed.importer_code),
                   len(probed.importer_code)))  # fmt: skip
    parts["start-up modules"].add(len(probed.importer_code), len(probed.importer_code))
    with ThreadPoolExecutor() as pool:  # lz4 lets go of the GIL while it compresses
        squeezed = pool.map(compress, [data for *_, data in pending])
        for (folder, tail, kind, data), small in zip(pending, squeezed):
            folder_of(folder)[tail] = (kind, *writer.entry(small, data))
            parts["modules"].add(folder_of(folder)[tail][2], len(data))
        # Extension modules and libraries, without their symbol tables.
        elf = strip_copies([*contents.libraries.values(), *contents.extensions.values()],
                           staged.parent / "elf")  # fmt: skip
        libraries = {}
        blobs = [elf[path].read_bytes() for path in contents.libraries.values()]
        for (name, _), data, small in zip(contents.libraries.items(), blobs,
                                          pool.map(compress, blobs)):  # fmt: skip
            libraries[name] = writer.entry(small, data)
            parts["libraries"].add(libraries[name][1], len(data))
        blobs = [elf[path].read_bytes() for path in contents.extensions.values()]
        for (relative, _), data, small in zip(contents.extensions.items(), blobs,
                                              pool.map(compress, blobs)):  # fmt: skip
            folder, _, file_name = relative.rpartition("/")
            tail = file_name.split(".", 1)[0]
            entry = writer.entry(small, data)
            folder_of(folder).setdefault(tail, (EXTENSION, *entry, file_name, needs[relative]))
            parts["extension modules"].add(entry[1], len(data))
        # Package data and distributions, and their index.
        blobs = [path.read_bytes() for path in contents.files.values()]
        files = {}
        for relative, data, small in zip(contents.files, blobs, pool.map(compress, blobs)):
            files[relative] = writer.entry(small, data)
            parts["files"].add(files[relative][1], len(data))
    listing = marshal.dumps(files)
    before_index = len(writer.data)
    index = {
        "dirs": folders,
        "libraries": libraries,
        "files": writer.entry(compress(listing), listing),
        "site_packages": f"{stdlib}/site-packages",
        # The .pth files the site module would run, in its order.
        "pth": sorted(
            path
            for path in files
            if path.rpartition("/")[0] == f"{stdlib}/site-packages" and path.endswith(".pth")
        ),
    }
    # CPython's table of frozen modules: names and the rows src/onefile.rs reads.
    rows = []
    for name, package, offset, size in frozen:
        rows.append((writer.raw(name.encode() + b"\0"), offset, size, int(package)))
    while len(writer.data) % 8:
        writer.data.append(0)
    table = writer.raw(b"".join(FROZEN_ROW.pack(*row) for row in rows))
    index_data = marshal.dumps(index, 4)
    index_offset = writer.raw(index_data)
    size = len(writer.data) + TRAILER.size
    # The index: the file list, CPython's table of frozen modules, the folders.
    parts["index"].add(size - before_index, size - before_index)
    writer.raw(TRAILER.pack(MAGIC, size, table, len(rows), index_offset, len(index_data),
                            probed.hexversion, 0))  # fmt: skip
    partial = out.with_name(out.name + ".partial")
    partial.write_bytes(writer.data)
    partial.replace(out)
    return parts


def starting_modules(contents: Contents, probed: Probed, stdlib: str) -> set[str]:
    """The modules CPython imports while it starts (before the importer
    runs), and every codec, which the locale or PYTHONIOENCODING may ask for
    then: frozen modules."""
    return set(probed.starting) | {
        module_name(relative, stdlib)
        for relative in contents.code
        if relative.startswith(f"{stdlib}/encodings/")
    }


# Run by the checked Python: the code of each frozen module, its file name
# made "<frozen NAME>" as in CPython's own frozen modules (CPython's loader
# of frozen modules does not set it, and the build's path would show).
FREEZE = r"""
import _imp, marshal, sys
for line in sys.stdin.read().splitlines():
    source, name, target = line.split("\t")
    with open(source, "rb") as stream:
        code = marshal.loads(stream.read()[16:])
    _imp._fix_co_filename(code, "<frozen " + name + ">")
    with open(target, "wb") as stream:
        stream.write(marshal.dumps(code))
"""


def freeze(python: Interpreter, home: Path, contents: Contents, names: set[str], stage: Path,
           stdlib: str) -> None:  # fmt: skip
    """The frozen modules' code into stage/frozen/NAME (FREEZE)."""
    folder = stage / "frozen"
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for relative in contents.code:
        name = module_name(relative, stdlib)
        if name in names and relative.endswith(".pyc"):
            lines.append(f"{home / relative}\t{name}\t{folder / name}")
    command = local[python.executable]["-I", "-c", FREEZE] << "\n".join(lines)
    code, out, err = command.run(retcode=None, timeout=300)
    if code != 0:
        raise HookError(
            f"{python.describe} could not prepare the frozen modules: {last_line(out, err)}",
            "Check that the interpreter works, then run the build again.",
        )


def strip_copies(paths: list[Path], folder: Path) -> dict[Path, Path]:
    """Copies of ELF files in `folder` without what only a linker or a
    debugger reads (strip --strip-unneeded, binutils'); the files themselves
    when strip is missing."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    copies = {path: folder / f"{number}-{path.name}" for number, path in enumerate(paths)}
    for path, copy in copies.items():
        shutil.copyfile(path, copy)
    try:
        strip = local[str(local.which("strip"))]
    except CommandNotFound:
        return {path: path for path in paths}
    if copies:
        strip[["--strip-unneeded", *map(str, copies.values())]].run(retcode=None)
    return copies


def module_name(relative: str, stdlib: str) -> str:
    """The module a file below the standard library or site-packages defines."""
    inside = relative[len(stdlib) + 1 :]
    for prefix in ("site-packages/", "lib-dynload/"):
        if inside.startswith(prefix):
            inside = inside[len(prefix) :]
    parts = inside.split("/")
    last = parts.pop().split(".", 1)[0]
    if last != "__init__":
        parts.append(last)
    return ".".join(parts)


# ---- Libraries ----


def dependencies(contents: Contents) -> dict[str, tuple[str, ...]]:
    """Per extension module, the payload's libraries it needs, directly or
    through another, each after those it needs itself: the order to load them."""
    direct = runtime.needed([*contents.extensions.values(), *contents.libraries.values()])
    by_user: dict[str, list[str]] = {}
    for library, users in direct.items():
        for user in users:
            by_user.setdefault(user, []).append(library)

    def order(user: str, done: list[str], seen: set[str]) -> None:
        for library in by_user.get(user, []):
            if library in contents.libraries and library not in seen:
                seen.add(library)
                order(library, done, seen)
                done.append(library)

    result = {}
    for relative, path in contents.extensions.items():
        done: list[str] = []
        order(path.name, done, set())
        result[relative] = tuple(done)
    return result


def add_system_libraries(contents: Contents, allowed: set[str]) -> list[str]:
    """--portable: the libraries the extension modules need from the system,
    directly or through another, but the C library's own (`allowed`), as
    auditwheel's lddtree finds them on this machine. Unlike the folder, which
    follows a manylinux policy, the one file carries zlib and expat too: a
    minimal Debian has no expat, and memory costs nothing on disk."""
    try:
        from auditwheel.lddtree import ldd
    except ImportError:
        runtime.manylinux_allowed()  # says how to install auditwheel
        raise
    added = []
    for user in [*contents.extensions.values(), *contents.libraries.values()]:
        # The C library's own needs are the C library's: not read for every user.
        for name, library in ldd(user, exclude=frozenset(allowed)).libraries.items():
            if name in contents.libraries or name in allowed:
                continue
            if not library.path:
                raise HookError(
                    f"{user.name} needs {name}, which cannot be found on this machine.",
                    "Install the package that provides it, then run the build again.",
                )
            contents.libraries[name] = Path(os.path.realpath(library.path))
            added.append(name)
    return sorted(added)


def system_needs(contents: Contents, allowed: set[str]) -> dict[str, list[str]]:
    """Libraries the payload's entries need from the target system."""
    users = [*contents.extensions.values(), *contents.libraries.values()]
    return {
        name: sorted(set(names))
        for name, names in sorted(runtime.needed(users).items())
        if name not in contents.libraries and name not in allowed
    }


def program_needs(program: Path, allowed: set[str]) -> dict[str, list[str]]:
    """Libraries the program itself needs from the system (its libpython's
    other libraries, without --portable)."""
    return {name: users for name, users in runtime.needed([program]).items() if name not in allowed}


def merged(first: dict[str, list[str]], second: dict[str, list[str]]) -> dict[str, list[str]]:
    names = sorted({*first, *second})
    return {name: sorted({*first.get(name, []), *second.get(name, [])}) for name in names}


# ---- The file ----


def libpython_size(probed: Probed) -> int:
    """The text and data that libpython's static library brings (binutils' size)."""
    archive = probed.static_dir / f"lib{probed.static_name}.a"
    try:
        size = local[str(local.which("size"))]
    except CommandNotFound:
        return 0
    _, out, _ = size["-t", str(archive)].run(retcode=None)
    for line in reversed(out.splitlines()):
        if "(TOTALS)" in line:
            text, data = line.split()[:2]
            return int(text) + int(data)
    return 0


def assemble(program: Path, payload: Path, out: Path) -> int:
    """The program with its symbol table stripped (what extension modules
    link to stays: the dynamic symbols), then the payload: written beside and
    moved into place. Returns the program's size."""
    partial = out.with_name(out.name + ".partial")
    shutil.copyfile(program, partial)
    try:
        strip = local[str(local.which("strip"))]
        strip["--strip-all", str(partial)].run(retcode=None)
    except CommandNotFound:
        pass
    size = partial.stat().st_size
    with partial.open("ab") as stream, payload.open("rb") as source:
        shutil.copyfileobj(source, stream, 1 << 20)
    partial.chmod(partial.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    partial.replace(out)
    return size


@dataclass
class Payload:
    """The payload, made before the program it is appended to."""

    path: Path
    parts: dict[str, Part]
    needs: dict[str, list[str]]  # library -> the entries that need it from the system
    copied: list[str]  # --portable: the system libraries it carries
    allowed: set[str]  # the libraries every glibc system has


def prepare_payload(
    project: Project,
    python: Interpreter,
    probed: Probed,
    home: Path,
    python_dir: str,
    portable: bool,
) -> Payload:
    """The payload from the runtime in `home`, made again only when an input
    changed."""
    work = project.artifact_dir / folder_artifacts.ONEFILE
    contents = collect(home, python_dir, probed)
    for name, source in stand_ins(probed.left_out).items():
        relative = f"lib/{python_dir}/{name}.py"
        contents.code.append(relative)
        contents.stand_ins[relative] = source
    copied: list[str] = []
    allowed = set(runtime.GLIBC) | {"libgcc_s.so.1"}  # what every glibc system has
    if portable:
        copied = add_system_libraries(contents, allowed)
    path = work / "payload"
    record = work / "payload.json"
    made_from = json.dumps(
        {
            "format": FORMAT,
            "level": LZ4_LEVEL,
            "inputs": inputs_manifest(home, contents),
            "importer": probed.importer_code.hex(),
            "starting": probed.starting,
        },
        sort_keys=True,
    )
    last = json.loads(record.read_text(encoding="utf-8")) if record.is_file() else {}
    if path.is_file() and last.get("made_from") == made_from and "needs" in last:
        parts = {name: Part(**part) for name, part in last["parts"].items()}
        needs = last["needs"]
    else:
        staged = work / "compiled"
        compile_sources(python, home, staged, contents)
        stdlib = f"lib/{python_dir}"
        freeze(python, home, contents, starting_modules(contents, probed, stdlib), staged, stdlib)
        order = dependencies(contents)
        parts = write_payload(home, python_dir, probed, contents, staged, order, path)
        needs = system_needs(contents, allowed)
        record.write_text(
            json.dumps({"made_from": made_from, "needs": needs,
                        "parts": {k: vars(v) for k, v in parts.items()}}),
            encoding="utf-8",
        )  # fmt: skip
    return Payload(path, parts, needs, copied, allowed)


def finish(made: Payload, probed: Probed, program: Path, out: Path) -> OneFile:
    """The built `program` with the payload appended, into `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    size = assemble(program, made.path, out)
    return OneFile(
        path=out,
        parts=made.parts,
        program=size,
        libpython=libpython_size(probed),
        needs=merged(made.needs, program_needs(program, made.allowed)),
        copied=made.copied,
    )


def inputs_manifest(home: Path, contents: Contents) -> list[list]:
    """Every input file with its size and modification time."""
    paths: Iterable[Path] = [
        *(contents.stand_ins.get(relative, home / relative) for relative in contents.code),
        *contents.extensions.values(),
        *contents.files.values(),
        *contents.libraries.values(),
    ]
    return sorted([str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in paths)


# ---- The command ----


def build(
    project: Project, args: argparse.Namespace, python: Interpreter | None, target: cargo.Target
) -> Path:
    """`tools/hooks build --onefile`: the artifacts, cargo, the file; returns it."""
    if project.engine != "pyo3":
        raise HookError(
            "--onefile needs the pyo3 engine, and this project uses pyembed.",
            "Switch with `copier update --trust --data engine=pyo3` (commit first), or "
            "build without --onefile.",
        )
    if python is None:  # the check failed: only pyembed goes on without it
        raise HookError("--onefile needs a usable Python.", "Fix the problem named above.")
    refuse_unsupported(python, target.triple)
    profile = "debug" if args.debug else "release"
    with step("Step 1 of 2: artifacts (the runtime, and a static libpython to link)"):
        made = folder_artifacts.produce(
            project, python, target.triple, profile, "local", requirements=args.requirements,
            defer=True,
        )  # fmt: skip
        probed = probe(python, project, project.artifact_dir / folder_artifacts.ONEFILE)
        linked = artifacts(project, python, probed, args.portable)
        say(f"Artifacts are in {made.directory}; libpython: "
            f"{probed.static_dir / ('lib' + probed.static_name + '.a')}.")  # fmt: skip
        if probed.left_out:
            say(left_out_note(probed.left_out))
    home, python_dir = made.directory / "runtime", Path(python.stdlib or "").name
    prepared: list[Payload] = []

    def make_payload() -> None:
        """The runtime and the payload, which cargo does not need."""
        if made.rest:
            made.rest()
        prepared.append(prepare_payload(project, python, probed, home, python_dir, args.portable))

    with step("Step 2 of 2: cargo build"):
        package = cargo.package(project)
        default = package["features"].get("default", [])
        features = [*cargo.prebuilt_features(default, target.windows), "onefile"]
        say(f"Features: {' '.join(features)}")
        say("Environment: " + " ".join(f"{k}={v}" for k, v in linked.environment.items()))
        binary = alongside(
            make_payload,
            lambda: cargo.build(project, linked, features, args.target, not args.debug),
        )
    with step("The one-file program"):
        out = project.root / "dist" / f"{project.name}-{package['version']}-{target.triple}"
        result = finish(prepared[0], probed, binary, out)
        report(result)
    return result.path


def stand_ins(modules: list[str]) -> dict[str, Path]:
    """The pure-Python stand-ins (hooks/standins) for those of the built-in
    `modules` the build leaves out that have one."""
    return {
        name: STAND_INS / f"{name}.py" for name in modules if (STAND_INS / f"{name}.py").is_file()
    }


def left_out_note(modules: list[str]) -> str:
    replaced = list(stand_ins(modules))
    return (
        f"This Python's static library lacks the code of its built-in modules "
        f"{', '.join(modules)} (CPython's HACL* hash code): the one file leaves them out. "
        "hashlib takes MD5, SHA-1, SHA-2 and SHA-3 from OpenSSL, as python does"
        + (
            f"; {', '.join(replaced)} is a pure-Python stand-in (BLAKE2, about 1 MB/s)."
            if replaced
            else "."
        )
    )


def report(result: OneFile) -> None:
    total = result.path.stat().st_size
    say(f"{result.path} ({total / MIB:.1f} MiB) is the whole program: copy it anywhere.")
    rows = [
        ("program (Rust and libpython)", result.program, None, None),
        ("  of which libpython, static", result.libpython, None, None),
    ]
    for name, part in result.parts.items():
        label = name if name == "index" else f"{name} ({part.count})"
        rows.append((label, part.stored, part.unpacked, part.count))
    lines = []
    for label, stored, unpacked, _ in rows:
        line = f"{label:<28}{stored / MIB:6.1f} MiB"
        if unpacked and unpacked != stored:
            line += f"  ({unpacked / MIB:.1f} MiB unpacked)"
        lines.append(line)
    code("\n".join(lines))
    if result.copied:
        say(
            f"--portable: carries {', '.join(result.copied)}; expects only the C "
            "library (glibc) and libgcc_s from the system."
        )
    if result.needs:
        say("It needs these libraries from the target system:")
        code("\n".join(f"{name}  (for {', '.join(users[:3])})" for name, users in
                       result.needs.items()))  # fmt: skip
        if not result.copied:
            say("`python3 tools/hooks build --onefile --portable` carries them too.")
    else:
        say("It needs nothing from the target system beyond the C library.")
