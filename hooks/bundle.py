"""The result of the two-step build: a folder that runs wherever it is moved,
and its archive.

    dist/NAME/NAME                          the program (RUNPATH $ORIGIN/lib)
    dist/NAME/lib/                          libpython, the standard library
    dist/NAME-VERSION-TARGET.tar.gz         the folder, for a release

Files are copied, and the archive written, only when something changed, so a
second build with nothing changed is quick (what the last build found is kept
in target/out/bundle). `--portable` also copies the shared libraries the
program needs from the system (OpenSSL, SQLite, libffi, zlib, ...), all but
the C library and libgcc_s, looked up again only when the folder's ELF files
changed. Every file of the folder,
binary ones included, is searched for this machine's folders (the
project's and the build Python's prefix), as `grep -r` would.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from . import runtime
from .artifacts import BUNDLE
from .project import Project
from .report import HookError

MIB = 1024 * 1024


@dataclass
class Bundle:
    folder: Path
    archive: Path
    needs: dict[str, list[str]]  # library -> the bundled files that need it
    copied: list[str] = field(default_factory=list)  # with --portable
    searched: list[str] = field(default_factory=list)  # this machine's folders
    names: dict[str, list[str]] = field(default_factory=dict)  # file -> those it names

    @property
    def folder_mib(self) -> float:
        files = [p for p in self.folder.rglob("*") if p.is_file() and not p.is_symlink()]
        return sum(p.stat().st_size for p in files) / MIB

    @property
    def archive_mib(self) -> float:
        return self.archive.stat().st_size / MIB


def assemble(
    project: Project,
    binary: Path,
    lib: Path | None,
    version: str,
    target: str,
    portable: bool = False,
    sysroot: str | None = None,
    prefix: str | None = None,
) -> Bundle:
    """dist/NAME/ and its archive from the built program and the runtime's lib/.
    A cross build's `sysroot` is the target system whose libraries --portable
    carries; `prefix` is the build Python's, which no file may name but
    libpython (CPython's compiled-in default prefix)."""
    dist = project.root / "dist"
    folder = dist / project.name
    archive = dist / f"{project.name}-{version}-{target}.tar.gz"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        copy_if_changed(binary, folder / binary.name)
        records = project.artifact_dir / BUNDLE
        copies = records / "portable.json"
        if lib is not None:
            sync(lib, folder / "lib", runtime.copied_libraries(copies) if portable else set())
        bundle = Bundle(folder, archive, {})
        allowed = runtime.GLIBC
        if portable:
            allowed = runtime.PORTABLE_ALLOWED
            bundle.copied = runtime.copy_system_libraries(
                folder, folder / "lib", allowed, sysroot, copies
            )
        record = records / "bundle.json"
        current = manifest(folder)
        last = json.loads(record.read_text(encoding="utf-8")) if record.is_file() else {}
        bundle.searched = machine_folders(project.root, prefix)
        if (
            archive.is_file()
            and last.get("manifest") == current
            and last.get("searched") == bundle.searched
        ):
            # Nothing changed: neither the files, nor their needs, nor what they name.
            bundle.needs, bundle.names = last["needs"], last["names"]
        else:
            bundle.needs = runtime.system_libraries(folder, allowed)
            bundle.names = machine_paths(folder, bundle.searched, prefix)
            write_archive(folder, archive)
            record.parent.mkdir(parents=True, exist_ok=True)
            made = {"manifest": current, "needs": bundle.needs, "names": bundle.names}
            record.write_text(json.dumps({**made, "searched": bundle.searched}))
    except OSError as error:
        raise HookError(
            f"Cannot write the bundle in {dist} ({error.strerror or error}).",
            "Make the project's dist folder writable (or remove it), then run the build again.",
        ) from error
    return bundle


def machine_folders(project: Path, prefix: str | None) -> list[str]:
    """This machine's folders no file of the bundle should name: the project's
    and the build Python's `prefix`, as given and resolved. A system prefix
    (/usr) is left out: every system library names it."""
    folders = {str(project), os.path.realpath(project)}
    if prefix and os.path.realpath(prefix) not in ("/", "/usr", "/usr/local"):
        folders |= {prefix, os.path.realpath(prefix)}
    return sorted(folders)


def machine_paths(folder: Path, searched: list[str], prefix: str | None) -> dict[str, list[str]]:
    """The files of `folder` (read as bytes, as `grep -r` does) that name any
    of the `searched` folders, with those they name. libpython may hold the
    `prefix`: CPython's compiled-in default, unused because the program sets
    Python's home."""
    found: dict[str, list[str]] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        allowed = {prefix, os.path.realpath(prefix)} if prefix else set()
        if not path.name.startswith("libpython"):
            allowed = set()
        held = [name for name in searched if name not in allowed and os.fsencode(name) in data]
        if held:
            found[str(path.relative_to(folder))] = held
    return found


def copy_if_changed(source: Path, destination: Path) -> None:
    """copy2 (time stamps kept), unless the destination has the same size and
    modification time already."""
    if destination.is_file() and not destination.is_symlink():
        mine, theirs = source.stat(), destination.stat()
        if (mine.st_size, mine.st_mtime_ns) == (theirs.st_size, theirs.st_mtime_ns):
            return
    if destination.is_symlink() or destination.exists():
        destination.unlink()
    shutil.copy2(source, destination)


def sync(source: Path, destination: Path, keep: set[str]) -> None:
    """Make `destination` a copy of `source` (symbolic links as links), copying
    only what changed and removing what `source` no longer has, but the files
    `keep` names directly in `destination`: the libraries --portable copied
    there last time, which it checks again after (a build without --portable
    removes them)."""
    destination.mkdir(parents=True, exist_ok=True)
    wanted = {Path(name) for name in keep}
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        wanted.add(relative)
        target = destination / relative
        if path.is_symlink():
            if not (target.is_symlink() and target.readlink() == path.readlink()):
                if target.is_symlink() or target.exists():
                    target.unlink()
                target.symlink_to(path.readlink())
        elif path.is_dir():
            target.mkdir(exist_ok=True)
        else:
            copy_if_changed(path, target)
    for path in sorted(destination.rglob("*"), reverse=True):
        if path.relative_to(destination) in wanted:
            continue
        if not path.is_dir() or path.is_symlink():
            path.unlink()
        elif not any(path.iterdir()):
            path.rmdir()


def manifest(folder: Path) -> dict[str, list[int]]:
    """Every file of the folder with its size and modification time."""
    return {
        str(path.relative_to(folder)): [path.lstat().st_size, path.lstat().st_mtime_ns]
        for path in sorted(folder.rglob("*"))
        if not path.is_dir() or path.is_symlink()
    }


def write_archive(folder: Path, archive: Path) -> None:
    """NAME-VERSION-TARGET.tar.gz holding NAME/ (written beside, then moved
    into place, so an interrupted build leaves no half archive)."""
    partial = archive.with_name(archive.name + ".partial")
    with tarfile.open(partial, "w:gz", compresslevel=6) as tar:
        tar.add(folder, arcname=folder.name)
    partial.replace(archive)
