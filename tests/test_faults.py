"""Faults during the hooks: each gets a clear message, and the generated
project stays whole (Copier deletes a new project when a task fails, so the
task must not fail)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT, copy_cli, files, flat, pyenv_python, render, require

SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"  # git and coreutils, but no Rust


def tools(tmp_path: Path, *names: str, extra: dict[str, str] | None = None) -> str:
    """A PATH of the system folders, the named real tools and the scripts in `extra`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in names:
        real = pyenv_python("3.11") if name == "python" else shutil.which(name)
        assert real, f"{name} is needed for this test"
        (bin_dir / name).symlink_to(real)
    for name, body in (extra or {}).items():
        script = bin_dir / name
        script.write_text(body)
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return f"{bin_dir}:{SYSTEM_PATH}"


def without_commit(contents: dict[str, bytes]) -> dict[str, bytes]:
    """Renders of a dirty working tree get different scratch commits."""
    answers = contents[".copier-answers.yml"].decode()
    contents[".copier-answers.yml"] = re.sub(r"(?m)^_commit: .*\n", "", answers).encode()
    return contents


def assert_same_as_a_plain_render(project: Path) -> None:
    engine = yaml.safe_load((project / ".copier-answers.yml").read_text())["engine"]
    reference = render(
        project.parent / "reference" / project.name, {"project_name": "demo", "engine": engine}
    )
    assert without_commit(files(project)) == without_commit(files(reference))


def assert_kept(project: Path, result: subprocess.CompletedProcess[str], *says: str) -> None:
    """Copier succeeded, every file is as a plain render writes it, the fault is named."""
    assert result.returncode == 0, result.stderr
    assert_same_as_a_plain_render(project)
    error = flat(result.stderr)
    for text in says:
        assert text in error
    assert f"The project's files are all in place in {project}" in flat(result.stdout)
    assert "python3 tools/hooks build" in result.stdout


def test_cargo_missing_from_path_is_named_and_the_files_stay(tmp_path: Path) -> None:
    path = tools(tmp_path, "rustc", "python")
    project = tmp_path / "demo"
    result = copy_cli(project, "project_name=demo", "run_build=true", env={"PATH": path})
    assert_kept(project, result, "`cargo` is not on PATH", "Install Rust (https://rustup.rs)")


def test_cargo_missing_makes_the_build_command_fail_by_exit_status(tmp_path: Path) -> None:
    project = render(tmp_path / "demo")
    result = subprocess.run(
        [sys.executable, "tools/hooks", "build"],
        cwd=project,
        env={**os.environ, "PATH": tools(tmp_path, "rustc", "python")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "`cargo` is not on PATH" in flat(result.stderr)


def test_rustc_failing_is_reported_with_what_it_said(tmp_path: Path) -> None:
    broken = "#!/bin/sh\necho 'error: the toolchain is broken' >&2\nexit 1\n"
    path = tools(tmp_path, "cargo", "python", extra={"rustc": broken})
    project = tmp_path / "demo"
    result = copy_cli(project, "project_name=demo", "run_build=true", env={"PATH": path})
    assert_kept(
        project, result, "`rustc -vV` failed (exit status 1): error: the toolchain is broken"
    )


def test_no_network_for_crates_is_named_with_the_fix(tmp_path: Path) -> None:
    require("cargo")
    project = tmp_path / "demo"
    env = {
        "CARGO_NET_OFFLINE": "true",
        "CARGO_HOME": str(tmp_path / "empty-cargo-home"),
        "CARGO_TARGET_DIR": str(tmp_path / "target"),
        "PYOXIDIZER_EXE": "",
    }
    result = copy_cli(project, "project_name=demo", "run_build=true", env=env)
    assert_kept(project, result, "could not download crates from crates.io", "cargo vendor")


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make a folder unwritable, even for root (which ignores permission bits)."""
    if os.geteuid() == 0:
        changed = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
        if changed.returncode != 0:
            pytest.fail(f"chattr +i is needed to make a folder read-only as root: {changed}")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        mode = path.stat().st_mode
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(mode)


def test_a_read_only_destination_is_refused_by_copier_and_left_as_it_was(tmp_path: Path) -> None:
    dest = tmp_path / "demo"
    dest.mkdir()
    with read_only(dest):
        result = copy_cli(dest, "project_name=demo")
    assert result.returncode != 0
    assert "Operation not permitted" in result.stderr or "Permission denied" in result.stderr
    assert dest.is_dir()
    assert list(dest.iterdir()) == []


def test_a_read_only_project_folder_stops_the_build_with_the_fix(tmp_path: Path) -> None:
    project = render(tmp_path / "demo")
    before = files(project)
    with read_only(project):
        result = subprocess.run(
            [sys.executable, "tools/hooks", "build", "--artifacts", "local"],
            cwd=project,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
            capture_output=True,
            text=True,
            check=False,
        )
    assert result.returncode == 1
    error = flat(result.stderr)
    assert f"Cannot prepare {project / 'target' / 'out'} for the artifacts" in error
    assert "Make the project's target folder writable" in error
    assert files(project) == before


def hook_pid(project: Path) -> int | None:
    found = subprocess.run(
        ["pgrep", "-f", "tools/hooks after-copy"], capture_output=True, text=True, check=False
    )
    for pid in found.stdout.split():
        try:
            if Path(f"/proc/{pid}/cwd").resolve() == project.resolve():
                return int(pid)
        except OSError:
            continue
    return None


def test_an_interrupted_build_keeps_the_files_and_says_how_to_resume(tmp_path: Path) -> None:
    require("cargo")
    require("pgrep")
    project = tmp_path / "demo"
    # A fresh target folder: cargo is certainly still compiling when the signal comes.
    env = {**os.environ, "CARGO_TARGET_DIR": str(tmp_path / "target"), "PYOXIDIZER_EXE": ""}
    copier = subprocess.Popen(
        [sys.executable, "-m", "copier", "copy", "--trust", "--defaults", "--vcs-ref=HEAD",
         "--data", "project_name=demo", "--data", "run_build=true", str(ROOT), str(project)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert copier.stdout is not None
    seen = []
    for line in copier.stdout:
        seen.append(line)
        if "==> Step 2 of 2" in line:
            break
    time.sleep(1)
    pid = hook_pid(project)
    assert pid, "".join(seen)
    os.kill(pid, signal.SIGINT)
    out, err = copier.communicate(timeout=300)
    result = subprocess.CompletedProcess(copier.args, copier.returncode, "".join(seen) + out, err)
    assert_kept(project, result, "Interrupted")
    assert not (tmp_path / "target" / "debug" / "demo").exists()


def stand_in(tmp_path: Path, body: str) -> str:
    path = tmp_path / "pyoxidizer"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.mark.e2e
def test_pyoxidizer_failing_is_reported_and_the_build_goes_on_locally(
    tmp_path: Path, cargo_target_root: Path
) -> None:
    exe = stand_in(tmp_path, "echo 'error: out of disk space' >&2\nexit 3\n")
    target_dir = cargo_target_root / "default"
    env = {"PYOXIDIZER_EXE": exe, "CARGO_TARGET_DIR": str(target_dir)}
    project = tmp_path / "demo"
    result = copy_cli(project, "project_name=demo", "engine=pyembed", "run_build=true", env=env)
    assert result.returncode == 0, result.stderr
    assert_same_as_a_plain_render(project)
    out = result.stdout
    assert "PyOxidizer failed, so local artifacts are used instead. It said:" in flat(out)
    assert "\n    error: out of disk space\n" in out
    assert f"Built {project / 'dist' / 'demo' / 'demo'}" in flat(out)


@pytest.mark.e2e
def test_pyoxidizer_hanging_is_stopped_at_the_time_limit_and_named(
    tmp_path: Path, cargo_target_root: Path
) -> None:
    exe = stand_in(tmp_path, "sleep 300\n")
    target_dir = cargo_target_root / "default"
    env = {"PYOXIDIZER_EXE": exe, "PYOXIDIZER_TIMEOUT": "2", "CARGO_TARGET_DIR": str(target_dir)}
    project = tmp_path / "demo"
    started = time.monotonic()
    result = copy_cli(project, "project_name=demo", "engine=pyembed", "run_build=true", env=env)
    assert result.returncode == 0, result.stderr
    assert_same_as_a_plain_render(project)
    assert "did not finish within 2 s and was stopped" in flat(result.stdout)
    assert f"Built {project / 'dist' / 'demo' / 'demo'}" in flat(result.stdout)
    assert time.monotonic() - started < 280
