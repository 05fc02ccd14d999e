"""What the tests of other targets need on this x86_64 Debian machine: the
cross toolchains (installed with apt-get and rustup when missing), and arm64
Debian roots made from Debian's own packages.

An arm64 root is made as the generated README says, with `debootstrap
--foreign --arch=arm64` (its first stage only: this machine cannot run arm64
programs without binfmt_misc, so no package's scripts run) and every
downloaded package unpacked with `dpkg-deb -x`:

- `arm64-SUITE-python`: a sysroot with the suite's CPython (libpython and the
  interpreter), the target Python of a cross build (PYO3_CROSS_LIB_DIR);
- `arm64-SUITE-minbase`: a minimal system, no Python, OpenSSL or SQLite;
- `arm64-SUITE-libc`: a folder holding only the C library and libgcc_s
  (Debian's libc6 and libgcc-s1), for `qemu-aarch64-static -L`.

They are kept beside the sid root (tests/sidroot.py: RUST_EMBEDDED_PYTHON_SID_ROOT's
folder), made once and reused; a root whose marker file is missing or stale is
made again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from . import sidroot
from .conftest import missing

ROOTS = sidroot.DEFAULT_ROOT.parent
# CPython of each suite, for aarch64: the suite and the packages of its sysroot.
ARM64_PYTHONS = {
    "3.11": ("bookworm", ("libpython3.11", "python3.11-minimal")),
    "3.14": ("sid", ("libpython3.14", "python3.14-minimal")),
}
# How qemu runs aarch64 programs here: its default CPU computes pointer
# authentication codes the slow way, which Debian sid's builds use (the hooks
# make the same choice, hooks/interpreter.py).
QEMU_AARCH64 = ("qemu-aarch64-static", "-cpu", "max,pauth-impdef=on")
# Debian package of each tool the tests use.
APT_PACKAGES = {
    "x86_64-w64-mingw32-gcc": "gcc-mingw-w64-x86-64",
    "x86_64-w64-mingw32-g++": "g++-mingw-w64-x86-64",  # snmalloc's C++
    "x86_64-w64-mingw32-windres": "binutils-mingw-w64-x86-64",
    "aarch64-linux-gnu-gcc": "gcc-aarch64-linux-gnu",
    "qemu-aarch64-static": "qemu-user-static",
    "dpkg-deb": "dpkg",
    "unshare": "util-linux",
}


def need_tools(*tools: str) -> None:
    """The tools on PATH, installed with apt-get when missing and this
    process can (root); else `missing` (a failure in CI, else a skip)."""
    absent = [tool for tool in tools if not shutil.which(tool)]
    if absent and os.geteuid() == 0 and shutil.which("apt-get"):
        packages = sorted({APT_PACKAGES[tool] for tool in absent})
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", *packages]
        if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
            subprocess.run(install, env=env, capture_output=True, check=False)
    still = [tool for tool in tools if not shutil.which(tool)]
    if still:
        packages = " ".join(sorted({APT_PACKAGES[tool] for tool in still}))
        missing(
            f"{', '.join(still)} not installed (apt-get install {packages} failed or needs root)"
        )


def need_qemu() -> str:
    """qemu-aarch64-static's path (statically linked: it runs in any root too)."""
    need_tools("qemu-aarch64-static")
    return str(shutil.which("qemu-aarch64-static"))


def need_rust_targets(*triples: str) -> None:
    """The Rust standard library of each target, added with rustup when missing."""
    if not shutil.which("rustup"):
        missing("rustup is needed to add the Rust targets " + ", ".join(triples))

    def installed() -> set[str]:
        listed = subprocess.run(
            ["rustup", "target", "list", "--installed"], capture_output=True, text=True, check=False
        )
        return set(listed.stdout.split())

    absent = [triple for triple in triples if triple not in installed()]
    if absent:
        subprocess.run(["rustup", "target", "add", *absent], capture_output=True, check=False)
        still = [triple for triple in triples if triple not in installed()]
        if still:
            missing(f"`rustup target add {' '.join(still)}` failed")


def arm64_root(suite: str, packages: Sequence[str] = ()) -> Path:
    """The arm64 root of `suite` with `packages` (a sysroot), or without any (a
    minimal system), made once."""
    name = f"arm64-{suite}-{'python' if packages else 'minbase'}"
    return _made(ROOTS / name, suite, packages)


def arm64_python(minor: str) -> Path:
    """The sysroot holding Debian's arm64 CPython `minor`."""
    suite, packages = ARM64_PYTHONS[minor]
    return arm64_root(suite, packages)


def arm64_libc(minor: str) -> Path:
    """A folder with only the C library and libgcc_s of CPython `minor`'s suite,
    unpacked from the packages its sysroot was made from."""
    suite, _ = ARM64_PYTHONS[minor]
    sysroot = arm64_python(minor)
    folder = ROOTS / f"arm64-{suite}-libc"
    archives = sysroot / "var" / "cache" / "apt" / "archives"
    debs = sorted(archives.glob("libc6_*_arm64.deb")) + sorted(
        archives.glob("libgcc-s1_*_arm64.deb")
    )
    marker = folder / sidroot.MARKER
    text = "\n".join(deb.name for deb in debs) + "\n"
    with sidroot._lock(folder):
        if not (marker.is_file() and marker.read_text() == text):
            if len(debs) != 2:
                raise RuntimeError(f"{archives} lacks libc6 or libgcc-s1: {debs}")
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            for deb in debs:
                _unpack(deb, folder)
            _merged_usr(folder)
            marker.write_text(text)
    return folder


def _made(root: Path, suite: str, packages: Sequence[str]) -> Path:
    sidroot._need_root_user()
    sidroot._refuse_inside_git(root)
    need_tools("dpkg-deb")
    marker = root / sidroot.MARKER
    text = "\n".join(["arm64", suite, *packages]) + "\n"
    with sidroot._lock(root):
        if not (marker.is_file() and marker.read_text() == text):
            command = [
                sidroot._debootstrap_path(),
                "--foreign",
                "--arch=arm64",
                "--variant=minbase",
            ]
            if packages:
                command.append(f"--include={','.join(packages)}")
            mirror = sidroot._reachable_mirror(suite)
            sidroot._remove(root)
            done = sidroot._execute([*command, suite, str(root), mirror], timeout=None)
            if done.returncode != 0:
                raise RuntimeError(
                    f"debootstrap --foreign of arm64 {suite} into {root} failed (exit "
                    f"{done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
                )
            # The first stage unpacks only the required packages; the others,
            # and what they depend on, wait in the archive cache.
            for deb in sorted((root / "var" / "cache" / "apt" / "archives").glob("*.deb")):
                _unpack(deb, root)
            _merged_usr(root)
            marker.write_text(text)
    return root


def _unpack(deb: Path, into: Path) -> None:
    subprocess.run(["dpkg-deb", "-x", str(deb), str(into)], check=True, capture_output=True)


def _merged_usr(root: Path) -> None:
    """/lib, /bin and /sbin as links into /usr where the packages put their
    files only there (Debian's base-files makes them on a real system): the
    programs name their loader /lib/ld-linux-aarch64.so.1."""
    for name in ("lib", "bin", "sbin"):
        if not (root / name).exists() and (root / "usr" / name).is_dir():
            (root / name).symlink_to(f"usr/{name}")
