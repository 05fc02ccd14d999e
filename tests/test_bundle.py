"""The bundle's search for this machine's folders (hooks/bundle.py), which
the build reports: every file read as bytes, as `grep -r` does."""

from __future__ import annotations

from pathlib import Path

from hooks import bundle


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
