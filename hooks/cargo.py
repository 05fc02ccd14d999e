"""Step 2 of the two-step build: cargo in build-mode-prebuilt-artifacts, and
what the hooks ask rustc and cargo about the target and the package."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from plumbum import local
from plumbum.commands.processes import CommandNotFound, ProcessTimedOut

from .artifacts import Artifacts
from .project import Project
from .report import HookError, last_line, note

TOOL_TIMEOUT = 120.0
# What cargo says when it cannot reach a registry.
NETWORK_FAILURES = (
    "failed to download",
    "--offline was specified",
    "you're using offline mode",
    "Couldn't resolve host",
    "failed to query replaced source registry",
    "Unable to update registry",
    "network failure",
    "failed to get `",
)
JEMALLOC_FEATURES = ("global-allocator-jemalloc", "allocator-jemalloc")
# The GNU toolchains' name for a Rust target's CPU, where the two differ.
GNU_ARCH = {"armv7": "arm", "riscv64gc": "riscv64"}


def tool(name: str) -> str:
    try:
        return str(local.which(name))
    except CommandNotFound:
        raise HookError(
            f"`{name}` is not on PATH, and the build needs Rust's cargo and rustc.",
            "Install Rust (https://rustup.rs) or add ~/.cargo/bin to PATH, then run "
            "`python3 tools/hooks build` again.",
        ) from None


def _run(args: list[str], cwd: Path | None = None) -> str:
    try:
        with local.cwd(cwd or Path.cwd()):
            code, out, err = local[tool(args[0])][args[1:]].run(retcode=None, timeout=TOOL_TIMEOUT)
    except ProcessTimedOut as error:
        raise HookError(
            f"`{' '.join(args)}` did not answer within {TOOL_TIMEOUT:.0f} s.",
            "Check the Rust installation.",
        ) from error
    if code != 0:
        said = last_line(out, err)
        raise HookError(
            f"`{' '.join(args)}` failed (exit status {code})" + (f": {said}" if said else "."),
            "Check the Rust installation (`rustup show`), then run the command again.",
        )
    return out


@dataclass(frozen=True)
class Target:
    triple: str
    pointer_width: int
    windows: bool
    host: str = ""  # rustc's host triple
    os: str = ""  # target_os: "linux", "windows", "macos", ...

    @property
    def cross(self) -> bool:
        """PyO3's rule: another CPU, vendor or system than the host's (not just
        another C library) needs the target's own Python (PYO3_CROSS_LIB_DIR)."""
        return bool(self.host) and self.triple.split("-")[:3] != self.host.split("-")[:3]


def target(triple: str | None = None) -> Target:
    """The target triple (rustc's host unless given) and what the build needs of it."""
    host = re.search(r"^host: (\S+)", _run(["rustc", "-vV"]), re.MULTILINE)
    if not host:
        raise HookError("`rustc -vV` printed no host triple.", "Check the Rust installation.")
    triple = triple or host.group(1)
    cfg = _run(["rustc", "--print", "cfg", "--target", triple])
    width = re.search(r'^target_pointer_width="(\d+)"', cfg, re.MULTILINE)
    os_name = re.search(r'^target_os="(\w+)"', cfg, re.MULTILINE)
    return Target(
        triple=triple,
        pointer_width=int(width.group(1)) if width else 64,
        windows='target_family="windows"' in cfg,
        host=host.group(1),
        os=os_name.group(1) if os_name else "",
    )


def linker_environment(target: Target, project: Project) -> dict[str, str]:
    """For a cross build to Linux, the GNU toolchain that links for the target
    (Debian's gcc-aarch64-linux-gnu for aarch64), unless the environment or a
    Cargo configuration file names a linker already."""
    if not target.cross:
        return {}
    variable = f"CARGO_TARGET_{target.triple.upper().replace('-', '_')}_LINKER"
    if os.environ.get(variable) or _configured_linker(target.triple, project.root):
        return {}
    arch, _, system = target.triple.partition("-unknown-")
    arch = GNU_ARCH.get(arch, arch)
    gcc = f"{arch}-{system}-gcc"
    if not shutil.which(gcc):
        raise HookError(
            f"Linking for {target.triple} needs a C toolchain for it, and {gcc} is not on PATH.",
            f"Install it (Debian/Ubuntu: apt install gcc-{arch.replace('_', '-')}-{system}), or "
            f"name your linker in {variable} or in .cargo/config.toml "
            f"([target.{target.triple}] linker = ...).",
        )
    return {variable: gcc}


def _configured_linker(triple: str, root: Path) -> bool:
    """Whether a Cargo configuration file Cargo reads from `root` sets
    target.TRIPLE.linker (read with tomllib or tomli; without either, no)."""
    try:
        import tomllib  # Python 3.11+
    except ImportError:
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            return False
    cargo_home = Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo")
    folders = [folder / ".cargo" for folder in (root, *root.parents)] + [cargo_home]
    for folder in folders:
        for name in ("config.toml", "config"):
            try:
                config = tomllib.loads((folder / name).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if config.get("target", {}).get(triple, {}).get("linker"):
                return True
    return False


def package(project: Project) -> dict:
    """The package as Cargo reads Cargo.toml (the user may have edited it)."""
    metadata = json.loads(
        _run(["cargo", "metadata", "--no-deps", "--format-version", "1"], cwd=project.root)
    )
    root = str(project.root / "Cargo.toml")
    for candidate in metadata["packages"]:
        if str(Path(candidate["manifest_path"]).resolve()) == root:
            return candidate
    raise HookError(f"cargo metadata does not list {root}.", "Check Cargo.toml.")


def prebuilt_features(
    default: list[str], windows: bool, mode: str = "build-mode-prebuilt-artifacts"
) -> list[str]:
    """The default features with `mode` as the build mode, so allocators stay
    what the project (and its interpreter config) chose."""
    features = [mode]
    features += [f for f in default if not f.startswith("build-mode-")]
    if windows and any(f in features for f in JEMALLOC_FEATURES):
        note("jemalloc does not exist on Windows: building without the jemalloc features.")
        features = [f for f in features if f not in JEMALLOC_FEATURES]
    return features


def build(
    project: Project,
    artifacts: Artifacts | None,
    features: list[str],
    target_triple: str | None,
    release: bool,
    environment: dict[str, str] | None = None,
) -> Path:
    """Run cargo with the artifacts' environment (none for a standalone build)
    and `environment`; stream its output; return the project's executable."""
    args = ["build", "--no-default-features", "--features", " ".join(features)]
    args += ["--message-format", "json-render-diagnostics"]
    if release:
        args.append("--release")
    if target_triple:
        args += ["--target", target_triple]
    env = {**(artifacts.environment if artifacts else {}), **(environment or {})}
    if sys.stderr.isatty():
        args += ["--color", "always"]  # cargo sees a pipe; keep the terminal's colours
    cargo = local[tool("cargo")][args]
    # cargo prints progress and diagnostics on stderr, passed on line by line
    # (and kept, to recognise a network failure), and one JSON message per line
    # on stdout, which names the executable. Its folder and environment are
    # given to it alone: the runtime is made alongside (report.alongside).
    process = cargo.popen(
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(project.root), env=env
    )
    said: deque[str] = deque(maxlen=200)
    relay = threading.Thread(target=_relay, args=(process.stderr, said), daemon=True)
    relay.start()
    executable = None
    assert process.stdout is not None
    try:
        for line in process.stdout:
            message = _json(line)
            built = message.get("reason") == "compiler-artifact" and message.get("executable")
            # The project's own program, rather than another binary target.
            if built and (executable is None or message["target"]["name"] == project.name):
                executable = message["executable"]
    except KeyboardInterrupt:
        # Stop cargo too (a Ctrl-C reaches it anyway; a signal to us alone does not).
        process.terminate()
        process.wait()
        raise
    code = process.wait()
    relay.join()
    if code != 0:
        if any(pattern in line for line in said for pattern in NETWORK_FAILURES):
            raise HookError(
                f"cargo build failed (exit status {code}): it could not download crates "
                "from crates.io (its messages are above).",
                "Connect to the network once (cargo keeps the crates in ~/.cargo), or "
                "vendor them with `cargo vendor`, then run `python3 tools/hooks build` again.",
            )
        raise HookError(
            f"cargo build failed (exit status {code}); its messages are above.",
            "Fix what they name, then run `python3 tools/hooks build` again.",
        )
    if not executable:
        raise HookError("cargo build produced no executable.", "Check Cargo.toml's [[bin]].")
    return Path(executable)


def _relay(stream: IO[bytes] | None, kept: deque[str]) -> None:
    for raw in stream or ():
        line = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
        sys.stderr.write(line)
        sys.stderr.flush()
        kept.append(line)


def _json(line: str | bytes) -> dict:
    try:
        data = json.loads(line)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
