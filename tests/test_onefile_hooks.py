"""`tools/hooks build --onefile` without cargo: the refusals and their fixes,
the pyo3 configuration that links libpython statically, and the payload's
layout as src/onefile.rs reads it (the end-to-end tests build and run one)."""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import marshal
import random
import shutil
import struct
import subprocess
import sys
import sysconfig
from dataclasses import replace
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


# A static library as Debian's 3.14 is: config.o (the table of built-in
# modules) names _md5's init function, md5module.o calls a HACL* function
# nothing defines.
CONFIG_C = """#include "Python.h"
extern PyObject* PyInit__md5(void);
extern PyObject* PyInit_math(void);
struct _inittab _PyImport_Inittab[] = {
    {"_md5", PyInit__md5},
    {"math", PyInit_math},
    {0, 0}
};
"""
MEMBERS = {
    "md5module.c": "void _Py_LibHacl_Hacl_Hash_MD5_digest(void);\n"
    "void *PyInit__md5(void) { _Py_LibHacl_Hacl_Hash_MD5_digest(); return 0; }\n",
    "mathmodule.c": "void *PyInit_math(void) { return 0; }\n",
}


def static_library_like_debians(folder: Path, members: dict[str, str]) -> Path:
    for tool in ("cc", "ar", "nm"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not on PATH; the test builds a static library with it")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.c").write_text(CONFIG_C)
    objects = []
    for name, text in {**members, "config.c": CONFIG_C}.items():
        (folder / name).write_text(text)
        include = f"-I{sysconfig.get_path('include')}"
        obj = folder / name.replace(".c", ".o")
        subprocess.run(["cc", "-c", "-fPIC", include, "-o", obj, folder / name], check=True)
        objects.append(obj)
    archive = folder / "libpython3.14-pic.a"
    subprocess.run(["ar", "rs", archive, *objects], check=True, capture_output=True)
    return archive


def nm_members(archive: Path) -> dict[str, str]:
    listing = subprocess.run(["nm", "-A", "--format=posix", archive], capture_output=True,
                             text=True, check=True).stdout  # fmt: skip
    members: dict[str, str] = {}
    for line in listing.splitlines():
        member = line.split("[", 1)[1].split("]", 1)[0]
        members[member] = members.get(member, "") + line.split("]: ", 1)[1] + "\n"
    return members


def test_a_static_library_without_cpythons_hash_code_is_linked_without_those_modules(
    tmp_path: Path,
) -> None:
    archive = static_library_like_debians(tmp_path / "config", MEMBERS)
    found = {"libpl": str(tmp_path / "config"), "include": [sysconfig.get_path("include")],
             "openssl_hashes": True}  # fmt: skip
    made, left_out = onefile.complete_static_library(
        interpreter(), archive, found, tmp_path / "scratch"
    )
    assert left_out == ["_md5"]
    assert made != archive
    assert made.name == archive.name
    members = nm_members(made)
    assert "md5module.o" not in members
    assert "PyInit_math U" in members["config.o"]
    assert "PyInit__md5" not in members["config.o"]
    assert "_PyImport_Inittab D" in members["config.o"]
    assert "md5module.o" in nm_members(archive)  # the Python's own is untouched
    # Asked again, the copy is reused.
    made.write_bytes(made.read_bytes() + b"")
    stamp = made.stat().st_mtime_ns
    again = onefile.complete_static_library(interpreter(), archive, found, tmp_path / "scratch")
    assert again == (made, ["_md5"])
    assert made.stat().st_mtime_ns == stamp
    # The report says what is left out and what stands in.
    note = onefile.left_out_note(["_blake2", "_md5"])
    assert "leaves them out" in note
    assert "_blake2 is a pure-Python stand-in" in note


def test_a_static_library_missing_code_outside_the_hash_modules_is_refused(
    tmp_path: Path,
) -> None:
    members = {**MEMBERS, "mathmodule.c": "void _Py_Missing(void);\n"
               "void *PyInit_math(void) { _Py_Missing(); return 0; }\n"}  # fmt: skip
    archive = static_library_like_debians(tmp_path / "config", members)
    found = {"libpl": str(tmp_path / "config"), "include": [sysconfig.get_path("include")],
             "openssl_hashes": True}  # fmt: skip
    with pytest.raises(HookError) as refused:
        onefile.complete_static_library(interpreter(), archive, found, tmp_path / "scratch")
    assert (
        refused.value.problem.startswith(
            f"CPython 3.12.1 (/usr/bin/python3.12)'s static library {archive} is incomplete: it "
            "calls 2 CPython functions it does not define (_Py_LibHacl_Hacl_Hash_MD5_digest, "
            "_Py_Missing, ...)"
        )
        or "is incomplete" in refused.value.problem
    )
    assert "so no program can link it" in refused.value.problem
    assert "pyenv install" in refused.value.fix
    # Without OpenSSL's hashes, leaving _md5 out is refused too.
    found["openssl_hashes"] = False
    archive = static_library_like_debians(tmp_path / "again", MEMBERS)
    with pytest.raises(HookError) as refused:
        onefile.complete_static_library(interpreter(), archive, found, tmp_path / "scratch2")
    assert "needs OpenSSL's hashes" in refused.value.problem


def stand_in() -> object:
    spec = importlib.util.spec_from_file_location("_blake2", onefile.STAND_INS / "_blake2.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("variant", ["blake2b", "blake2s"])
def test_the_blake2_stand_in_hashes_as_cpythons_blake2_with_every_parameter(
    variant: str,
) -> None:
    ours, theirs = getattr(stand_in(), variant), getattr(hashlib, variant)
    for size in ("SALT_SIZE", "PERSON_SIZE", "MAX_KEY_SIZE", "MAX_DIGEST_SIZE"):
        assert getattr(ours, size) == getattr(theirs, size)
    rnd = random.Random(7)  # noqa: S311 (test data, not secrets)
    most = theirs.MAX_DIGEST_SIZE
    parameters = [
        {},
        {"digest_size": 1},
        {"digest_size": rnd.randint(2, most - 1)},
        {"key": rnd.randbytes(1)},
        {"key": rnd.randbytes(theirs.MAX_KEY_SIZE), "digest_size": 20},
        {"salt": rnd.randbytes(theirs.SALT_SIZE), "person": b"me"},
        {
            "fanout": 0,
            "depth": 255,
            "leaf_size": 2**32 - 1,
            "node_offset": 2**40 + 3,
            "node_depth": 7,
            "inner_size": most,
            "last_node": True,
        },
        {"key": b"k", "last_node": True, "usedforsecurity": False},
    ]
    block = 128 if variant == "blake2b" else 64
    for size in (0, 1, block - 1, block, block + 1, 2 * block, 3 * block + 5):
        data = rnd.randbytes(size)
        for kwargs in parameters:
            one = ours(data, **kwargs)
            assert (one.name, one.digest_size, one.block_size) == (
                theirs(**kwargs).name, theirs(**kwargs).digest_size, block)  # fmt: skip
            assert one.hexdigest() == theirs(data, **kwargs).hexdigest(), (size, kwargs)
            # As 3.14's _blake2 (the one it stands in for), it takes data by name too.
            assert ours(data=data, **kwargs).digest() == one.digest()
            pieces = ours(**kwargs)
            for start in range(0, size, 37):
                pieces.update(memoryview(data)[start : start + 37])
            copy = pieces.copy()
            copy.update(b"more")
            assert pieces.digest() == theirs(data, **kwargs).digest()
            assert copy.digest() == theirs(data + b"more", **kwargs).digest()
    wrongs = [({"digest_size": 0}, ValueError), ({"key": bytes(most + 1)}, ValueError),
              ({"depth": 0}, ValueError), ({"leaf_size": 2**32}, OverflowError)]  # fmt: skip
    for wrong, error in wrongs:
        with pytest.raises(error):
            ours(**wrong)
    with pytest.raises(TypeError, match="Strings must be encoded before hashing"):
        ours("text")


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


def test_packed_relocations_are_asked_for_only_where_glibc_reads_them(tmp_path: Path) -> None:
    line = "extra_build_script_line=cargo:rustc-link-arg=-Wl,-z,pack-relative-relocs"
    assert onefile.glibc_version("glibc 2.36") == (2, 36)
    assert onefile.glibc_version("") == ()
    assert onefile.glibc_version("musl 1.2") == ()
    base = probed(tmp_path, ["m"])
    for glibc, sysroot, asked in (((2, 36), None, True), ((2, 43), None, True),
                                  ((2, 35), None, False), ((), None, False),
                                  ((2, 36), "/usr/aarch64-linux-gnu", False)):  # fmt: skip
        python = interpreter(candidate=Candidate("/usr/bin/python3.12", "test", sysroot=sysroot))
        config = onefile.pyo3_config(python, replace(base, glibc=glibc), portable=False)
        assert (line in config.splitlines()) == asked, (glibc, sysroot)


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
    # The parts add up to the payload: its size report leaves nothing out.
    assert sum(part.stored for part in parts.values()) == len(data)
    assert parts["start-up modules"].count == 3
    files = marshal.loads(entry(data, index["files"]))  # noqa: S302
    assert list(files) == ["lib/python3.12/site-packages/pkg/data.txt"]
    assert entry(data, files["lib/python3.12/site-packages/pkg/data.txt"]) == b"data"
    namespace: dict = {}
    code = marshal.loads(entry(data, index["dirs"]["lib/python3.12"]["json"][1:4]))  # noqa: S302
    exec(code, namespace)  # noqa: S102 (the module this test compiled)
    assert namespace["x"] == 1


def test_sources_are_compiled_under_their_path_in_the_home_not_this_machines(
    tmp_path: Path,
) -> None:
    home = tmp_path / "runtime"
    source = home / "lib" / "python3.12" / "site-packages" / "app" / "__init__.py"
    source.parent.mkdir(parents=True)
    source.write_text("def f():\n    return 1\n")
    contents = onefile.Contents(code=["lib/python3.12/site-packages/app/__init__.py",
                                      "lib/python3.12/_blake2.py"])  # fmt: skip
    contents.stand_ins["lib/python3.12/_blake2.py"] = onefile.STAND_INS / "_blake2.py"
    stage = tmp_path / "stage"
    onefile.compile_sources(interpreter(executable=sys.executable), home, stage, contents)
    for relative in contents.code:
        compiled = (stage / relative).with_suffix(".pyc").read_bytes()
        assert str(tmp_path).encode() not in compiled
        code = marshal.loads(compiled[16:])  # noqa: S302 (compiled just above)
        assert code.co_filename == relative


def entry(data: bytes, where: tuple[int, int, int]) -> bytes:
    """A payload entry, decompressed as src/onefile.rs does (LZ4 blocks)."""
    import lz4.block

    offset, stored, size = where
    raw = data[offset : offset + stored]
    return raw if stored == size else lz4.block.decompress(raw, uncompressed_size=size)
