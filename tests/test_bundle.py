"""The bundle's search for this machine's folders (hooks/bundle.py), which
the build reports: every file read as bytes, as `grep -r` does."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from hooks import bundle, runtime


def test_every_file_naming_the_project_or_the_prefix_is_found_but_libpythons_prefix(
    tmp_path: Path,
) -> None:
    project, prefix = tmp_path / "project", tmp_path / "python"
    prefix.mkdir()
    (tmp_path / "link").symlink_to(prefix)
    folder = tmp_path / "dist"
    (folder / "lib" / "pkg").mkdir(parents=True)
    (folder / "prog").write_bytes(b"\x7fELF\0" + str(project).encode() + b"/target\0")
    (folder / "lib" / "libpython3.12.so.1.0").write_bytes(b"\0" + str(prefix).encode() + b"\0")
    (folder / "lib" / "libother.so").write_bytes(b"\0" + str(prefix).encode() + b"/lib\0")
    (folder / "lib" / "pkg" / "clean.pyc").write_bytes(b"\0lib/python3.12/pkg/clean.py\0")
    (folder / "lib" / "pkg" / "script").write_text(f"#!{tmp_path / 'link'}/bin/python3\n")

    searched = bundle.machine_folders(project, str(tmp_path / "link"))
    assert searched == sorted({str(project), str(tmp_path / "link"), str(prefix)})
    found = bundle.machine_paths(folder, searched, str(tmp_path / "link"))
    assert found == {
        "prog": [str(project)],
        "lib/libother.so": [str(prefix)],
        "lib/pkg/script": [str(tmp_path / "link")],
    }


def test_a_system_prefix_is_not_searched_for_every_system_library_names_it(
    tmp_path: Path,
) -> None:
    assert bundle.machine_folders(tmp_path, "/usr") == [str(tmp_path)]
    assert bundle.machine_folders(tmp_path, None) == [str(tmp_path)]


def shared_library(path: Path, text: str, *link: str) -> None:
    """A shared library compiled from C `text` with cc."""
    if shutil.which("cc") is None:
        pytest.fail("cc is not on PATH; the test builds shared libraries with it")
    source = path.with_suffix(".c")
    source.write_text(text)
    subprocess.run(["cc", "-shared", "-fPIC", f"-Wl,-soname,{path.name}", "-o", path, source,
                    *link], check=True)  # fmt: skip
    source.unlink()


def test_portable_looks_libraries_up_and_copies_them_again_only_when_their_files_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A system (a sysroot, as a cross build has) with libfoo, and a folder
    # whose extension module needs it.
    system = tmp_path / "system"
    (system / "etc").mkdir(parents=True)
    (system / "etc" / "ld.so.conf").write_text("")
    (system / "usr" / "lib").mkdir(parents=True)
    foo = system / "usr" / "lib" / "libfoo.so.1"
    shared_library(foo, "int foo(void) { return 1; }\n")
    lib = tmp_path / "dist" / "app" / "lib"
    lib.mkdir(parents=True)
    shared_library(lib / "ext.so", "int foo(void);\nint ext(void) { return foo(); }\n",
                   f"-L{foo.parent}", "-l:libfoo.so.1")  # fmt: skip
    record = tmp_path / "out" / "portable.json"

    def copy() -> list[str]:
        return runtime.copy_system_libraries(lib.parent, lib, runtime.GLIBC, str(system), record)

    assert copy() == ["libfoo.so.1"]
    copied = lib / "libfoo.so.1"
    first = copied.stat().st_mtime_ns

    # Nothing changed: not looked up, not copied.
    def fail(*args: object) -> None:
        raise AssertionError("looked the libraries up again")

    with monkeypatch.context() as patched:
        patched.setattr(runtime, "look_up_libraries", fail)
        assert copy() == ["libfoo.so.1"]
        assert copied.stat().st_mtime_ns == first
        # A copy removed by hand is copied again, without a look-up.
        copied.unlink()
        assert copy() == ["libfoo.so.1"]
        assert copied.is_file()
    # The system's library changed (a package upgrade): looked up and copied again.
    shared_library(foo, "int foo(void) { return 2; }\nint bar(void) { return 3; }\n")
    before = copied.read_bytes()
    assert copy() == ["libfoo.so.1"]
    assert copied.read_bytes() != before
    # The folder's ELF files changed (an extension module needs nothing now):
    # the copy goes.
    shared_library(lib / "ext.so", "int ext(void) { return 0; }\n")
    assert copy() == []
    assert not copied.exists()
