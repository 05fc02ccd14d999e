"""`tools/hooks build --onefile` without cargo: the refusals and their fixes,
the pyo3 configuration that links libpython statically, and the payload's
layout as src/onefile.rs reads it (the end-to-end tests build and run one)."""

from __future__ import annotations

import argparse
import marshal
import struct
import sys
from pathlib import Path

import pytest

from hooks import onefile
from hooks.cargo import Target
from hooks.interpreter import Candidate, Interpreter
from hooks.project import Project
from hooks.report import HookError

from .conftest import render

TRIPLE = "x86_64-unknown-linux-gnu"


def interpreter(**changes: object) -> Interpreter:
    fields: dict = {
        "candidate": Candidate("/usr/bin/python3.12", "test"),
        "implementation": "CPython",
        "version": (3, 12, 1),
        "executable": "/usr/bin/python3.12",
        "base_prefix": "/usr",
        "libdir": "/usr/lib",
        "ldversion": "3.12",
        "shared": True,
        "pointer_width": 64,
        "platform": "linux-x86_64",
        "windows": False,
        "stdlib": "/usr/lib/python3.12",
    }
    return Interpreter(**{**fields, **changes})


def found(folder: Path, shared: bool = True, cflags: str = "") -> dict:
    return {"libpl": str(folder), "libdir": None, "ldversion": "3.12", "shared": shared,
            "cflags": cflags}  # fmt: skip


def test_a_python_without_a_static_library_is_refused_naming_the_package(tmp_path: Path) -> None:
    with pytest.raises(HookError) as refused:
        onefile.static_library(interpreter(), found(tmp_path))
    assert refused.value.problem.startswith(
        "--onefile needs libpython3.12.a (Debian, Ubuntu: package libpython3.12-dev), and"
    )
    assert "--without-static-libpython" in refused.value.fix


def test_a_static_library_that_is_not_position_independent_is_refused_naming_the_option(
    tmp_path: Path,
) -> None:
    (tmp_path / "libpython3.12.a").write_bytes(b"!<arch>\n")
    with pytest.raises(HookError) as refused:
        onefile.static_library(interpreter(), found(tmp_path, shared=False))
    assert refused.value.problem.startswith(
        "--onefile needs a position-independent libpython3.12.a (CPython's configure "
        "--enable-shared, or CFLAGS=-fPIC, makes one)"
    )
    # Built with -fPIC, or as a shared build (CPython compiles it so), it is taken.
    assert onefile.static_library(interpreter(), found(tmp_path, False, "-O2 -fPIC")) == (
        tmp_path,
        "python3.12",
    )


def test_debians_position_independent_copy_is_preferred(tmp_path: Path) -> None:
    (tmp_path / "libpython3.12.a").write_bytes(b"!<arch>\n")
    (tmp_path / "libpython3.12-pic.a").write_bytes(b"!<arch>\n")
    assert onefile.static_library(interpreter(), found(tmp_path, shared=False)) == (
        tmp_path,
        "python3.12-pic",
    )


def probed(tmp_path: Path, libraries: list[str]) -> onefile.Probed:
    return onefile.Probed(
        hexversion=0x030C01F0,
        starting=["encodings", "encodings.aliases"],
        extension_suffixes=[".cpython-312-x86_64-linux-gnu.so", ".abi3.so", ".so"],
        static_dir=tmp_path,
        static_name="python3.12",
        system_libraries=libraries,
        importer_code=marshal.dumps(compile("pass", "importer", "exec")),
    )


def test_the_pyo3_configuration_links_the_whole_static_library_instead_of_pyo3s_line(
    tmp_path: Path,
) -> None:
    config = onefile.pyo3_config(interpreter(), probed(tmp_path, ["dl", "m"]), portable=False)
    lines = config.splitlines()
    assert "shared=false" in lines
    assert "suppress_build_script_link_lines=true" in lines
    assert (
        "extra_build_script_line=cargo:rustc-link-lib=static:+whole-archive,-bundle=python3.12"
        in lines
    )
    assert f"extra_build_script_line=cargo:rustc-link-search=native={tmp_path}" in lines
    assert "extra_build_script_line=cargo:rustc-link-lib=m" in lines


def test_portable_refuses_a_library_libpython_needs_that_has_no_static_archive(
    tmp_path: Path,
) -> None:
    with pytest.raises(HookError) as refused:
        onefile.pyo3_config(interpreter(), probed(tmp_path, ["m", "nosuchlib"]), portable=True)
    assert "no static libnosuchlib.a" in refused.value.problem
    assert "or build without --portable" in refused.value.fix


def test_link_names_keep_the_order_and_drop_repeats() -> None:
    assert onefile.link_names("-ldl -L/x -Wl,-rpath,/x -lm  -lz -lm -lexpat \\ -lz") == [
        "dl",
        "m",
        "z",
        "expat",
    ]


@pytest.mark.parametrize("triple", ["x86_64-pc-windows-gnu", "aarch64-apple-darwin"])
def test_onefile_for_another_system_than_linux_is_refused(triple: str) -> None:
    with pytest.raises(HookError) as refused:
        onefile.refuse_unsupported(interpreter(), triple)
    assert "--onefile makes Linux programs only" in refused.value.problem


def test_onefile_with_the_pyembed_engine_is_refused_with_the_switch(tmp_path: Path) -> None:
    project = Project.at(render(tmp_path / "demo", {"engine": "pyembed"}))
    args = argparse.Namespace(debug=False, portable=False, requirements=None, target=None)
    with pytest.raises(HookError) as refused:
        onefile.build(project, args, interpreter(), Target(TRIPLE, 64, False))
    assert (
        refused.value.problem == "--onefile needs the pyo3 engine, and this project uses pyembed."
    )
    assert "copier update --trust --data engine=pyo3" in refused.value.fix


def test_the_payload_has_the_layout_src_onefile_rs_reads(tmp_path: Path) -> None:
    """Trailer, frozen table and index of a payload made from a tiny runtime
    (what this test wrote is what it unmarshals)."""
    home = tmp_path / "runtime"
    stdlib = home / "lib" / "python3.12"
    for relative, source in {
        "encodings/__init__.py": "",
        "encodings/aliases.py": "",
        "json/__init__.py": "x = 1",
        "site-packages/pkg/__init__.py": "",
    }.items():
        path = stdlib / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_suffix(".pyc").write_bytes(
            b"\0" * 16 + marshal.dumps(compile(source, relative, "exec"))
        )
    (stdlib / "site-packages" / "pkg" / "data.txt").write_text("data")
    info = probed(tmp_path, [])
    contents = onefile.collect(home, "python3.12", info)
    out = tmp_path / "payload"
    staged = tmp_path / "staged"
    names = onefile.starting_modules(contents, info, "lib/python3.12")
    python = interpreter(executable=sys.executable)  # the one that wrote these .pyc files
    onefile.freeze(python, home, contents, names, staged, "lib/python3.12")
    parts = onefile.write_payload(home, "python3.12", info, contents, staged, {}, out)
    data = out.read_bytes()
    magic, size, table, count, index_at, index_size, version, _ = onefile.TRAILER.unpack(data[-64:])
    assert (magic, size, version) == (b"ONEFILE1", len(data), 0x030C01F0)
    frozen = {}
    for row in range(count):
        name_at, code_at, code_size, package = struct.unpack_from("<4Q", data, table + 32 * row)
        name = data[name_at : data.index(b"\0", name_at)].decode()
        frozen[name] = (marshal.loads(data[code_at : code_at + code_size]), package)  # noqa: S302
    assert set(frozen) == {"encodings", "encodings.aliases", "_onefile_importer"}
    assert frozen["encodings"][1] == 1
    # Named as CPython names its own frozen modules' code, not by the build's path.
    assert frozen["encodings.aliases"][0].co_filename == "<frozen encodings.aliases>"
    index = marshal.loads(data[index_at : index_at + index_size])  # noqa: S302
    assert index["dirs"]["lib/python3.12"]["json"][0] == onefile.PACKAGE
    assert index["dirs"]["lib/python3.12/site-packages"]["pkg"][0] == onefile.PACKAGE
    assert index["site_packages"] == "lib/python3.12/site-packages"
    assert parts["files"].count == 1
    files = marshal.loads(entry(data, index["files"]))  # noqa: S302
    assert list(files) == ["lib/python3.12/site-packages/pkg/data.txt"]
    assert entry(data, files["lib/python3.12/site-packages/pkg/data.txt"]) == b"data"
    namespace: dict = {}
    code = marshal.loads(entry(data, index["dirs"]["lib/python3.12"]["json"][1:4]))  # noqa: S302
    exec(code, namespace)  # noqa: S102 (the module this test compiled)
    assert namespace["x"] == 1


def entry(data: bytes, where: tuple[int, int, int]) -> bytes:
    """A payload entry, decompressed as src/onefile.rs does (LZ4 blocks)."""
    import lz4.block

    offset, stored, size = where
    raw = data[offset : offset + stored]
    return raw if stored == size else lz4.block.decompress(raw, uncompressed_size=size)
