"""A Debian `sid` root for building and running against CPython 3.14 and 3.15.

Debian's `sid` suite ships python3.14-dev and python3.15-dev, but its glibc is
newer than the host's (Debian 12), so those interpreters only run inside a
root made with debootstrap. The tests render a project on the host (under
/tmp), then build and run it inside that root with the host's own Rust
toolchain, which is bind-mounted at the same path:

    root = ensure_root()
    with mounted(root, [project, target_dir]):
        run(root, ["cargo", "build"], cwd=project, env={"PYO3_PYTHON": "python3.14"})

Everything here needs the real root user (mount, chroot, debootstrap). A
process holds an exclusive lock (ROOT.lock, beside the root) while it creates
the root and for as long as its outermost `mounted` block lasts, so two test
processes take turns instead of unmounting each other's mounts.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, cast

from plumbum import local


def _test_cache() -> Path:
    """The tests' cache folder, beside the hooks' tool environments in
    ~/.cache/rust-embedded-python-template; the one earlier versions made under
    the template's old name (~/.cache/pyembed-template) is moved there once."""
    cache = Path.home() / ".cache" / "rust-embedded-python-template" / "tests"
    old = Path.home() / ".cache" / "pyembed-template"
    if not cache.exists() and old.is_dir():
        cache.parent.mkdir(parents=True, exist_ok=True)
        old.rename(cache)
    return cache


TEST_CACHE = _test_cache()
DEFAULT_ROOT = Path(os.environ.get("RUST_EMBEDDED_PYTHON_SID_ROOT") or TEST_CACHE / "sid-root")
PACKAGES = (
    "python3.14-dev",  # python3.14, libpython3.14.so and the headers
    "python3.15-dev",
    # _sqlite3, _decimal, _ctypes (_ssl is in libpython3.X-minimal); Depends of
    # python3.X already, named so that a change there cannot drop them unnoticed.
    "libpython3.14-stdlib",
    "libpython3.15-stdlib",
    "gcc",  # rustc links through `cc`
    "g++",  # snmalloc's C++ (the snmalloc allocator features)
    "make",  # jemalloc's build (the jemalloc allocator features)
    "libc6-dev",
    # --onefile --portable links libpython's own libraries statically: its
    # built-in zlib and pyexpat modules need libz.a and libexpat.a, and
    # 3.15's built-in _zstd libzstd.a.
    "zlib1g-dev",
    "libexpat1-dev",
    "libzstd-dev",
    "ca-certificates",  # /etc/ssl/certs, overwritten by the host's bundle (see _copy_host_files)
)
CARGO_HOME = Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo")
RUSTUP_HOME = Path(os.environ.get("RUSTUP_HOME") or Path.home() / ".rustup")
# A minimal Debian 12 (this machine's release): what a target system without
# Python, OpenSSL or SQLite looks like, for the --portable bundle.
MINIMAL_ROOT = DEFAULT_ROOT.parent / "bookworm-minbase"
# The same of sid, for programs that link sid's glibc (its CPython 3.14).
MINIMAL_SID_ROOT = DEFAULT_ROOT.parent / "sid-minbase"
# Debian 12 as a user has it: its own python3 (PEP 668), pipx, and what a pyo3
# project's build needs, for the tests that start where users start.
DEBIAN_ROOT = DEFAULT_ROOT.parent / "bookworm-python"
DEBIAN_PACKAGES = (
    "python3",  # 3.11, with the EXTERNALLY-MANAGED marker
    "python3-venv",  # ensurepip, which pipx and the hooks' tool environment use
    "python3-pip",  # only to show that pip refuses to install outside a venv
    "pipx",
    "libpython3.11-dev",  # libpython3.11.so, which pyo3 links
    "git",  # Copier asks git about the template folder
    "gcc",  # rustc links through `cc`
    "libc6-dev",
    # --onefile --portable links libpython's own libraries statically: its
    # built-in zlib and pyexpat modules need libz.a and libexpat.a, and
    # 3.15's built-in _zstd libzstd.a.
    "zlib1g-dev",
    "libexpat1-dev",
    "libzstd-dev",
    "ca-certificates",
)
MARKER = ".pyembed-sid-root-complete"  # written last, holds PACKAGES: absent or stale = redo
HOST_FILES = ("/etc/resolv.conf", "/etc/hosts", "/etc/ssl/certs/ca-certificates.crt")
FALLBACK_MIRROR = "http://deb.debian.org/debian"

_held: dict[Path, tuple[int, int]] = {}  # root -> (lock file descriptor, depth), this process


def ensure_root(
    root: Path = DEFAULT_ROOT, suite: str = "sid", packages: Sequence[str] = PACKAGES
) -> Path:
    """The root of Debian `suite` with `packages` at `root`, made by debootstrap
    unless a complete one is there. With no packages it is a minimal system:
    no Python, no OpenSSL, no SQLite (MINIMAL_ROOT)."""
    root = _absolute(root)
    _need_root_user()
    _refuse_inside_git(root)
    with _lock(root), _handling(signal.SIGTERM, handler=_exit):
        marker = root / MARKER
        marker_text = _marker_text(suite, packages)
        if not (marker.is_file() and marker.read_text() == marker_text):
            command = [_debootstrap_path(), "--variant=minbase"]
            if packages:
                command.append(f"--include={','.join(packages)}")
            mirror = _reachable_mirror(suite)  # both checked before an old root is deleted
            _remove(root)  # half-made by an interrupted run, or made with other packages
            done = _execute([*command, suite, str(root), mirror], timeout=None)
            if done.returncode != 0:
                log = root / "debootstrap" / "debootstrap.log"
                raise RuntimeError(
                    f"debootstrap of {suite} into {root} failed (exit {done.returncode}): see the"
                    " output below; running again starts afresh.\n"
                    f"{done.stdout[-3000:]}{done.stderr[-3000:]}\n"
                    + (log.read_text(errors="replace")[-3000:] if log.is_file() else "")
                )
        _copy_host_files(root)  # again each time: the host's DNS or CA bundle may change
        marker.write_text(marker_text)  # last: a root without it is made again
    return root


@contextlib.contextmanager
def mounted(root: Path, binds: Sequence[Path] = ()) -> Iterator[Path]:
    """/proc, and /dev, CARGO_HOME, RUSTUP_HOME and `binds` bound at the same paths
    inside `root`; all unmounted again on exit, whatever ends the block.

    Nesting is fine: a path already mounted by an outer block is left to it. The
    outermost block first unmounts whatever a killed earlier run left behind.
    """
    root = _absolute(root)
    _need_root_user()
    with _lock(root) as outermost, _handling(signal.SIGTERM, handler=_exit):
        made: list[Path] = []
        try:
            if outermost:
                _unmount_all(root)
            if not _is_mountpoint(root / "proc"):
                (root / "proc").mkdir(exist_ok=True)
                local["mount"]("-t", "proc", "proc", str(root / "proc"))
                made.append(root / "proc")
            for bind in [Path("/dev"), CARGO_HOME, RUSTUP_HOME, *binds]:
                source = _absolute(bind)
                target = _inside(root, source)
                if any(p == target or p in target.parents for p in _mounts_under(root)):
                    continue  # mounted already, or seen through a bind of a parent folder
                if not source.exists():
                    raise RuntimeError(f"cannot bind {source} into the sid root: it does not exist")
                if source.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.touch()
                # /dev with what is mounted inside it (/dev/shm for multiprocessing's
                # semaphores, /dev/pts); the others as they are.
                recursive = source == Path("/dev")
                local["mount"]("--rbind" if recursive else "--bind", str(source), str(target))
                made.append(target)
                # No propagation to the host.
                local["mount"]("--make-rprivate" if recursive else "--make-private", str(target))
            yield root
        finally:
            received: list[int] = []  # no Ctrl-C or SIGTERM cuts the clean-up short
            with _handling(signal.SIGINT, signal.SIGTERM, handler=lambda n, _: received.append(n)):
                for target in reversed(made):
                    _unmount(target)
                if outermost:
                    _unmount_all(root)
            if received:
                _exit(received[0], None)


def run(
    root: Path,
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 1800,
) -> subprocess.CompletedProcess[str]:
    """`argv` run inside `root` (chroot) in folder `cwd` (a path inside the root, so
    a bind-mounted one), with a clean environment plus `env`. Output is captured
    as text; a non-zero exit is returned, not raised. On timeout the whole process
    group is killed and subprocess.TimeoutExpired raised."""
    return _execute(command(root, argv, cwd=cwd, env=env), stdin=stdin, timeout=timeout)


def run_bytes(
    root: Path,
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    timeout: float = 1800,
) -> subprocess.CompletedProcess[bytes]:
    """`run`, with stdin, stdout and stderr as bytes, exactly as the program
    reads and writes them (no decoding, no newline translation)."""
    return _execute(command(root, argv, cwd=cwd, env=env), stdin=stdin, timeout=timeout, text=False)


def command(
    root: Path, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None = None
) -> list[str]:
    """The command line that runs `argv` as `run` does, for a caller that starts
    it itself (on a pseudo-terminal, say)."""
    home = str(Path.home())
    variables = {
        "HOME": home,
        "PATH": f"{CARGO_HOME}/bin:/usr/local/bin:/usr/bin:/bin",
        "RUSTUP_HOME": str(RUSTUP_HOME),
        "CARGO_HOME": str(CARGO_HOME),
        "LANG": "C.UTF-8",
        **(env or {}),
    }
    return [
        _tool("chroot") or "chroot",
        str(_absolute(root)),
        "/usr/bin/env",
        "-i",
        f"--chdir={cwd}",
        "--",
        *(f"{name}={value}" for name, value in variables.items()),
        *argv,
    ]


def pythons(root: Path = DEFAULT_ROOT) -> dict[str, str]:
    """Minor version ("3.14", or "3.14t" if free-threaded) -> interpreter path
    inside the root, for each /usr/bin/python3.N[t] that exists, oldest first."""
    found = {}
    for path in (_absolute(root) / "usr" / "bin").glob("python3.*"):
        match = re.fullmatch(r"python(3\.(\d+)t?)", path.name)
        if match and path.is_file():
            found[match.group(1)] = (int(match.group(2)), f"/usr/bin/{path.name}")
    return {minor: found[minor][1] for minor in sorted(found, key=lambda m: (found[m][0], m))}


# Processes and creating the root.


def _marker_text(suite: str, packages: Sequence[str]) -> str:
    return "\n".join([suite, *packages]) + "\n"


def _execute(
    argv: Sequence[str],
    *,
    stdin: str | bytes | None = None,
    timeout: float | None,
    text: bool = True,
) -> subprocess.CompletedProcess[Any]:
    """argv in a process group of its own, output captured as text (UTF-8,
    newlines translated), or as bytes unless `text`. If the wait ends early
    (timeout, Ctrl-C, SIGTERM), the whole group is killed (cargo's rustc
    children, debootstrap's dpkg), then the exception goes on."""
    decoding: dict[str, str] = {"encoding": "utf-8", "errors": "replace"} if text else {}
    process = cast(  # plumbum's Popen wrapper passes everything on to a subprocess.Popen
        "subprocess.Popen[Any]",
        local[argv[0]][list(argv[1:])].popen(stdin=subprocess.PIPE, new_session=True, **decoding),
    )
    try:
        stdout, stderr = process.communicate(stdin, timeout=timeout)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    return subprocess.CompletedProcess(list(argv), process.returncode, stdout, stderr)


def _reachable_mirror(suite: str) -> str:
    mirror = _mirror()
    try:
        urllib.request.urlopen(f"{mirror}/dists/{suite}/Release", timeout=60).close()  # noqa: S310
    except (urllib.error.URLError, OSError) as error:
        raise RuntimeError(
            f"Debian mirror {mirror} unreachable ({error}): fix the network or set"
            " RUST_EMBEDDED_PYTHON_SID_MIRROR to a reachable Debian mirror."
        ) from error
    return mirror


def _debootstrap_path() -> str:
    """debootstrap, installed with apt-get first if missing."""
    if not _tool("debootstrap") and shutil.which("apt-get"):
        apt = local["apt-get"].with_env(DEBIAN_FRONTEND="noninteractive")
        if apt.run(["install", "-y", "-q", "debootstrap"], retcode=None)[0] != 0:
            apt.run(["update", "-q"], retcode=None)  # an empty or stale package list
            apt.run(["install", "-y", "-q", "debootstrap"], retcode=None)
    path = _tool("debootstrap")
    if not path:
        raise RuntimeError(
            "debootstrap is missing and `apt-get install debootstrap` failed: install it"
            " (apt-get update && apt-get install debootstrap) and run again."
        )
    return path


def _mirror() -> str:
    """$RUST_EMBEDDED_PYTHON_SID_MIRROR, else the host's Debian mirror (deb822
    sources), else deb.debian.org."""
    if os.environ.get("RUST_EMBEDDED_PYTHON_SID_MIRROR"):
        return os.environ["RUST_EMBEDDED_PYTHON_SID_MIRROR"].rstrip("/")
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.is_file():
        for stanza in re.split(r"\n\s*\n", sources.read_text()):
            fields: dict[str, str] = dict(
                re.findall(r"^(\w[\w-]*):[ \t]*(.*)$", stanza, re.MULTILINE)
            )
            suites = fields.get("Suites", "").split()
            if fields.get("URIs") and not any(s.endswith("-security") for s in suites):
                return fields["URIs"].split()[0].rstrip("/")
    return FALLBACK_MIRROR


def _copy_host_files(root: Path) -> None:
    for name in HOST_FILES:
        source, target = Path(name), _inside(root, Path(name))
        if not source.is_file():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        # The root's own file may be a symlink to an absolute path: writing
        # through it would change the host's file, so replace the link itself.
        if target.is_symlink() or target.exists():
            target.unlink()
        target.write_bytes(source.read_bytes())


def _remove(root: Path) -> None:
    """Delete a root, never following a mount into the host's files."""
    if not root.exists():
        return
    _unmount_all(root)
    if _mounts_under(root):
        raise RuntimeError(
            f"{root} still has mounts inside ({', '.join(map(str, _mounts_under(root)))}):"
            " unmount them (umount -l) before it can be removed and made again."
        )
    local["rm"]("-rf", "--one-file-system", str(root))


# Mounts.


def _mount_points() -> list[Path]:
    """Every mount point of this process, in the order they were mounted
    (/proc/self/mountinfo, field 5, with its octal escapes such as \\040)."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        field = line.split()[4]
        points.append(Path(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)))
    return points


def _mounts_under(root: Path) -> list[Path]:
    """Mount points strictly inside root."""
    return [point for point in _mount_points() if root in point.parents]


def _is_mountpoint(path: Path) -> bool:
    return path in _mount_points()


def _unmount(target: Path) -> None:
    """Unmount target: normally, else lazily (a process still uses it), once per
    stacked mount."""
    while _is_mountpoint(target):
        code, _, _ = local["umount"].run([str(target)], retcode=None)
        if code != 0:
            code, _, _ = local["umount"].run(["-l", str(target)], retcode=None)
        if code != 0:
            return


def _unmount_all(root: Path) -> None:
    for point in reversed(_mounts_under(root)):
        _unmount(point)


def _inside(root: Path, host_path: Path) -> Path:
    """host_path's place inside root, refusing one that a symlink in the root
    leads out of it (mount would follow it onto the host)."""
    target = root / host_path.relative_to("/")
    resolved = target.resolve()
    if resolved != root.resolve() and root.resolve() not in resolved.parents:
        raise RuntimeError(
            f"{target} leads outside the sid root (to {resolved}): remove that symlink from the"
            " root, or delete the root so that ensure_root makes it again."
        )
    return target


# Guards.


def _absolute(path: Path) -> Path:
    """Absolute with symlinks resolved, as /proc/self/mountinfo spells paths."""
    return Path(os.path.realpath(Path(path).expanduser()))


def _tool(name: str) -> str | None:
    """A program's path; /usr/sbin and /sbin too, which a non-login PATH may lack."""
    return shutil.which(name, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")


def _need_root_user() -> None:
    if os.geteuid() != 0:
        raise RuntimeError(
            "the sid root needs the root user (debootstrap, mount, chroot): run the tests as"
            " root, e.g. with sudo, or skip the sid tests."
        )


def _refuse_inside_git(root: Path) -> None:
    for parent in [root, *root.parents]:
        if (parent / ".git").exists():
            raise RuntimeError(
                f"the sid root {root} is inside the git work tree {parent}: set"
                " RUST_EMBEDDED_PYTHON_SID_ROOT to a folder outside it (default"
                " ~/.cache/rust-embedded-python-template/tests/sid-root)."
            )


@contextlib.contextmanager
def _lock(root: Path) -> Iterator[bool]:
    """An exclusive lock on root.lock, re-entrant within this process; yields
    whether this is the outermost hold."""
    if root in _held:
        fd, depth = _held[root]
        _held[root] = (fd, depth + 1)
        try:
            yield False
        finally:
            _held[root] = (fd, depth)
        return
    root.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(root.parent / f"{root.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _held[root] = (fd, 1)
        yield True
    finally:
        _held.pop(root, None)
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def _handling(*signums: int, handler: Callable[[int, FrameType | None], object]) -> Iterator[None]:
    """handler for these signals during the block (main thread only; a signal
    this process ignores stays ignored)."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in signums:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, signal.SIG_DFL if old is None else old)


def _exit(signum: int, frame: FrameType | None) -> None:
    """SIGINT as KeyboardInterrupt, SIGTERM as SystemExit: either way the
    `finally` blocks run, so the mounts are undone."""
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)
