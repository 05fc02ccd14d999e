"""Checks of the relocatable program the two-step build makes (dist/NAME):
run it moved elsewhere, with the Python it was built from and the build
folders hidden and an empty environment, and read its ELF files' dynamic
sections."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from . import sidroot
from .conftest import flat, require

# Each is run by the moved program; together they cover the standard library,
# C extension modules, a module run with -m, and child processes.
CHECKS = {
    "imports": (
        ["-c", "import ssl, sqlite3, json, decimal, ctypes, zlib, lzma; print('ok')"],
        None,
        "ok\n",
    ),
    # Its output, not only its status: a program that dropped `-m json.tool`
    # and ran stdin as a script would exit 0 too (the object is an expression).
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
}


def moved(folder: Path, destination: Path) -> Path:
    """The bundle folder moved (not copied) to `destination`, so nothing is
    left where it was built; returns the program in it."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(folder, destination)
    return destination / folder.name


def run_hidden(
    program: Path,
    args: list[str],
    hidden: Sequence[Path],
    empty: Path,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """`env -i PROGRAM ARGS` in a mount namespace of its own where each of
    `hidden` (the build Python's prefix, the project with its target/out, the
    cargo target folder) is an empty folder: no Python, no build output and no
    environment."""
    require("unshare")
    empty.mkdir(parents=True, exist_ok=True)
    script = (
        'empty="$1"; count="$2"; shift 2; '
        'while [ "$count" -gt 0 ]; do mount --bind "$empty" "$1" || exit 125; '
        "shift; count=$((count - 1)); done; "
        'cd / && exec env -i "$@"'
    )
    return subprocess.run(
        ["unshare", "--mount", "sh", "-c", script, "sh", str(empty), str(len(hidden)),
         *map(str, hidden), str(program), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip


# Where the moved program finds Python: its prefix, a standard module's file
# and sys.path, all inside the bundle. (-s: the user's own site-packages,
# which python adds too when it exists, is no part of a bundle.)
WHERE = (
    "import os, sys; print(sys.prefix); print(os.__file__); "
    "print(*[entry for entry in sys.path if entry], sep='\\n')"
)


def check_moved(
    run: Callable[[list[str], str | None], subprocess.CompletedProcess[str]], program: Path
) -> None:
    """Every CHECKS case passes when `run(ARGS, STDIN)` runs the moved
    `program`, and Python's prefix, `os.__file__` and every `sys.path` entry
    lie inside the program's folder."""
    for name, (args, stdin, expected) in CHECKS.items():
        ran = run(args, stdin)
        assert (ran.returncode, ran.stdout) == (0, expected), f"{name}: {ran.stderr}"
    where = run(["-s", "-c", WHERE], None)
    assert where.returncode == 0, where.stderr
    prefix, os_file, *path = where.stdout.splitlines()
    assert prefix == str(program.parent)
    outside = [entry for entry in [os_file, *path] if not Path(entry).is_relative_to(prefix)]
    assert path, where.stdout
    assert not outside, where.stdout


def absolute_paths(folder: Path) -> dict[str, list[str]]:
    """RPATH, RUNPATH and NEEDED entries naming an absolute path, per ELF file of
    the folder, as `readelf -d` shows them."""
    require("readelf")
    found: dict[str, list[str]] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        with path.open("rb") as stream:
            if stream.read(4) != b"\x7fELF":
                continue
        dynamic = subprocess.run(
            ["readelf", "-d", str(path)], capture_output=True, text=True, check=True
        ).stdout
        for line in dynamic.splitlines():
            if any(tag in line for tag in ("(RPATH)", "(RUNPATH)", "(NEEDED)")):
                value = line.split("[", 1)[1].rstrip("]")
                if any(part.startswith("/") for part in value.split(":")):
                    found.setdefault(str(path.relative_to(folder)), []).append(line.strip())
    return found


def machine_paths(folder: Path, project: Path, prefix: Path) -> dict[str, list[str]]:
    """Every file of the bundle, binary ones included (as `grep -r` reads
    them), that holds the project folder's path or the build Python's prefix,
    with which of them. Allowed: the prefix inside libpython itself, CPython's
    compiled-in default prefix (unused: the program sets Python's home)."""
    needles = {str(project), str(project.resolve()), str(prefix), os.path.realpath(prefix)}
    found: dict[str, list[str]] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        allowed = set()
        if path.name.startswith("libpython"):
            allowed = {str(prefix), os.path.realpath(prefix)}
        held = sorted(n for n in needles - allowed if n.encode("utf-8", "surrogateescape") in data)
        if held:
            found[str(path.relative_to(folder))] = held
    return found


def check_in_minimal_root(root: Path, folder: Path, elsewhere: Path) -> None:
    """The bundle `folder`, moved into `elsewhere`, run inside the minimal Debian
    `root`, which has no Python, OpenSSL or SQLite of its own: `check_moved`
    passes, and `six` (installed with --requirements) imports from the bundle."""
    lib = root / "usr" / "lib" / "x86_64-linux-gnu"
    assert not list(lib.glob("libssl.so*"))
    assert not list(lib.glob("libsqlite3.so*"))
    assert not list((root / "usr" / "bin").glob("python3*"))
    program = moved(folder, elsewhere / folder.name)
    with sidroot.mounted(root, [program.parent.parent]):
        check_moved(
            lambda args, stdin: sidroot.run(
                root, [str(program), *args], cwd=Path("/"), stdin=stdin
            ),
            program,
        )
        code = "import six, sys; print(six.__file__.startswith(sys.prefix), sys.prefix)"
        ran = sidroot.run(root, [str(program), "-c", code], cwd=Path("/"))
    assert ran.stdout == f"True {program.parent}\n", ran.stderr


def build_portable(project: Path, env: Mapping[str, str]) -> Path:
    """`python3 tools/hooks build --portable --requirements requirements.txt`
    (with `six` in it) run in `project` with `env` added; the report names the
    system libraries it carries (not the dynamic loader) and nothing left to
    need beyond the C library, and no ELF file of the bundle names an absolute
    path. Returns the bundle folder."""
    (project / "requirements.txt").write_text("six==1.16.0\n")
    built = subprocess.run(
        [sys.executable, "tools/hooks", "build", "--portable", "--requirements",
         "requirements.txt"],
        cwd=project, env={**os.environ, **env}, capture_output=True, text=True,
        timeout=1800, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    out = flat(built.stdout)
    assert "--portable: carries" in out
    assert "libssl.so.3" in out
    assert "It needs nothing from the target system beyond the C library." in out
    folder = project / "dist" / project.name
    assert absolute_paths(folder) == {}
    # The loader is named by an absolute path (PT_INTERP): a copy would go unused.
    assert not list((folder / "lib").glob("ld-*.so*"))
    return folder
