"""Other targets than this x86_64 Linux machine (issue 23).

- Windows (x86_64-pc-windows-gnu), linked here with Debian's MinGW-w64: the
  PE headers, read with pefile, show the subsystem the answer chose, the
  manifest as a resource and the import of the chosen CPython's DLL; clippy is
  clean for that target.
- macOS (aarch64 and x86_64): clippy of the default features, with a PyO3
  configuration file standing in for a macOS Python. (The allocator features
  compile C with Apple's SDK: the generated CI's macOS job builds them.)
- Linux aarch64: `tools/hooks build --target aarch64-unknown-linux-gnu
  --portable` against Debian's arm64 CPython (PYO3_CROSS_LIB_DIR in a sysroot,
  tests/crossroots.py); the bundle runs under qemu-aarch64-static with only a
  folder holding the C library and libgcc_s, and in an arm64 minimal Debian.
- The hooks' cross-build plumbing and the generated workflows, without a build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from hooks import cargo, interpreter
from hooks.cli import main
from hooks.project import Project
from hooks.report import HookError

from . import crossroots, relocation, sidroot
from .conftest import cargo as run_cargo
from .conftest import flat, missing, render
from .test_workflows import actionlint

AARCH64 = "aarch64-unknown-linux-gnu"
WINDOWS = "x86_64-pc-windows-gnu"
MACOS = ("aarch64-apple-darwin", "x86_64-apple-darwin")
IMPORTS = (
    "import platform, ssl, sqlite3, json, decimal, ctypes, sys; "
    "print(platform.machine(), sys.version.split()[0])"
)

# ---- The hooks' cross-build plumbing (no build) ----


def fake_sysroot(root: Path, minor: str = "3.11", arch: str = "aarch64") -> Path:
    """A sysroot with what find_cross reads: the interpreter's file and its
    _sysconfigdata, with Debian's build-time paths."""
    (root / "usr" / "bin").mkdir(parents=True, exist_ok=True)
    (root / "usr" / "bin" / f"python{minor}").write_text("")
    stdlib = root / "usr" / "lib" / f"python{minor}"
    stdlib.mkdir(parents=True, exist_ok=True)
    variables = {
        "VERSION": minor,
        "BINDIR": "/usr/bin",
        "LIBDEST": f"/usr/lib/python{minor}",
        "LIBDIR": f"/usr/lib/{arch}-linux-gnu",
        "prefix": "/usr",
    }
    (stdlib / f"_sysconfigdata__{arch}-linux-gnu.py").write_text(
        f"# system configuration\nbuild_time_vars = {variables!r}\n"
    )
    return root


def fake_tool(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tool = folder / name
    tool.write_text("#!/bin/sh\nexit 0\n")
    tool.chmod(0o755)
    return tool


def test_the_targets_python_comes_from_pyo3_cross_lib_dir_and_runs_under_qemu(
    tmp_path: Path,
) -> None:
    root = fake_sysroot(tmp_path / "sysroot")
    qemu = fake_tool(tmp_path / "bin", "qemu-aarch64-static")
    env = {"PYO3_CROSS_LIB_DIR": str(root / "usr" / "lib"), "PATH": str(qemu.parent)}

    found = interpreter.find_cross(AARCH64, env)

    assert found.path == str(root / "usr" / "bin" / "python3.11")
    assert found.sysroot == str(root)
    assert found.runner == (str(qemu), "-cpu", "max,pauth-impdef=on", "-L", str(root))
    assert "PYO3_CROSS_LIB_DIR is set" in found.reason


def test_cargos_runner_variable_runs_the_targets_python_instead_of_qemu(tmp_path: Path) -> None:
    root = fake_sysroot(tmp_path / "sysroot")
    env = {
        "PYO3_CROSS_LIB_DIR": str(root / "usr" / "lib"),
        "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER": "my-emulator --flag 'a b'",
        "PATH": "",
    }
    assert interpreter.find_cross(AARCH64, env).runner == ("my-emulator", "--flag", "a b")


def test_a_cross_build_without_pyo3_cross_lib_dir_names_the_variable_and_a_sysroot() -> None:
    with pytest.raises(HookError) as raised:
        interpreter.find_cross(AARCH64, {})
    assert "PYO3_CROSS_LIB_DIR is not set" in raised.value.problem
    assert "PYO3_CROSS_LIB_DIR=SYSROOT/usr/lib" in raised.value.fix


def test_without_an_emulator_the_error_names_qemu_user_and_cargos_runner_variable(
    tmp_path: Path,
) -> None:
    root = fake_sysroot(tmp_path / "sysroot")
    with pytest.raises(HookError) as raised:
        interpreter.find_cross(AARCH64, {"PYO3_CROSS_LIB_DIR": str(root / "usr" / "lib"),
                                         "PATH": str(tmp_path / "empty")})  # fmt: skip
    assert "qemu-aarch64-static" in raised.value.problem
    assert "apt install qemu-user-static" in raised.value.fix
    assert "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER" in raised.value.fix


def test_with_two_pythons_in_the_sysroot_pyo3_cross_python_version_picks_one(
    tmp_path: Path,
) -> None:
    root = fake_sysroot(fake_sysroot(tmp_path / "sysroot", "3.11"), "3.13")
    fake_tool(tmp_path / "bin", "qemu-aarch64-static")
    env = {"PYO3_CROSS_LIB_DIR": str(root / "usr" / "lib"), "PATH": str(tmp_path / "bin")}
    with pytest.raises(HookError) as raised:
        interpreter.find_cross(AARCH64, env)
    assert "several Pythons' _sysconfigdata_*.py" in raised.value.problem
    assert "PYO3_CROSS_PYTHON_VERSION" in raised.value.fix

    chosen = interpreter.find_cross(AARCH64, {**env, "PYO3_CROSS_PYTHON_VERSION": "3.13"})
    assert chosen.path.endswith("/usr/bin/python3.13")


def test_a_pyo3_cross_lib_dir_outside_a_sysroot_layout_is_refused_with_the_fix(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "moved"
    fake_sysroot(tmp_path / "sysroot")
    (tmp_path / "sysroot" / "usr" / "lib").rename(folder)  # no longer at /usr/lib
    with pytest.raises(HookError) as raised:
        interpreter.find_cross(AARCH64, {"PYO3_CROSS_LIB_DIR": str(folder)})
    assert "is not where that Python was built to live (/usr/lib/python3.11)" in flat(
        raised.value.problem
    )


def test_the_targets_build_time_paths_are_found_inside_its_sysroot() -> None:
    on_host = interpreter.on_host
    assert on_host("/usr/lib/aarch64-linux-gnu", "/sr") == "/sr/usr/lib/aarch64-linux-gnu"
    assert on_host("/sr/usr/lib/python3.11", "/sr") == "/sr/usr/lib/python3.11"
    assert on_host("/usr/lib", None) == "/usr/lib"
    assert on_host(None, "/sr") is None


def aarch64_target() -> cargo.Target:
    return cargo.Target(AARCH64, 64, False, host="x86_64-unknown-linux-gnu", os="linux")


def test_only_another_cpu_or_system_is_a_cross_build_as_pyo3_says() -> None:
    host = "x86_64-unknown-linux-gnu"
    assert aarch64_target().cross
    assert not cargo.Target("x86_64-unknown-linux-musl", 64, False, host=host, os="linux").cross
    assert not cargo.Target(host, 64, False, host=host, os="linux").cross


def test_a_cross_build_links_with_the_targets_gcc_unless_a_linker_is_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = Project(tmp_path / "app", {})
    (project.root / ".cargo").mkdir(parents=True)
    fake_tool(tmp_path / "bin", "aarch64-linux-gnu-gcc")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("CARGO_HOME", str(tmp_path / "cargo-home"))
    monkeypatch.delenv("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER", raising=False)
    variable = "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER"

    assert cargo.linker_environment(aarch64_target(), project) == {
        variable: "aarch64-linux-gnu-gcc"
    }
    monkeypatch.setenv(variable, "clang-wrapper")
    assert cargo.linker_environment(aarch64_target(), project) == {}
    monkeypatch.delenv(variable)
    (project.root / ".cargo" / "config.toml").write_text(
        f'[target.{AARCH64}]\nlinker = "my-linker"\n'
    )
    assert cargo.linker_environment(aarch64_target(), project) == {}


def test_a_missing_cross_gcc_names_the_debian_package_and_the_linker_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("CARGO_HOME", str(tmp_path / "cargo-home"))
    monkeypatch.delenv("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER", raising=False)
    with pytest.raises(HookError) as raised:
        cargo.linker_environment(aarch64_target(), Project(tmp_path, {}))
    assert "aarch64-linux-gnu-gcc is not on PATH" in raised.value.problem
    assert "apt install gcc-aarch64-linux-gnu" in raised.value.fix
    assert "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER" in raised.value.fix


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(tmp_path_factory.mktemp("targets") / "app", {"project_name": "app"})


def test_build_for_windows_is_refused_with_the_cargo_command_that_builds_it(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["build", "--project", str(project), "--target", WINDOWS])
    error = flat(capsys.readouterr().err)
    assert status == 1
    assert f"makes relocatable Linux programs, and {WINDOWS} is not a Linux target" in error
    assert f"cargo build --release --target {WINDOWS}" in error
    assert "PYO3_CROSS_PYTHON_VERSION" in error


def test_a_pyembed_build_for_another_cpu_is_refused_with_the_switch_to_pyo3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = render(tmp_path / "old", {"project_name": "old", "engine": "pyembed"})
    assert main(["build", "--project", str(project), "--target", AARCH64]) == 1
    error = flat(capsys.readouterr().err)
    assert f"two-step build is for this machine's CPU, not {AARCH64}" in error
    assert "copier update --trust --data engine=pyo3" in error


def test_a_one_file_for_another_cpu_is_refused_and_the_folder_build_named(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["build", "--project", str(project), "--target", AARCH64, "--onefile"]) == 1
    error = flat(capsys.readouterr().err)
    assert f"--onefile builds for this machine's CPU only, not {AARCH64}" in error
    assert f"Leave --onefile out for the relocatable folder for {AARCH64}" in error


def test_check_for_another_cpu_asks_for_the_targets_python_not_this_machines(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYO3_CROSS_LIB_DIR", raising=False)
    assert main(["check", "--project", str(project), "--target", AARCH64]) == 1
    assert "PYO3_CROSS_LIB_DIR is not set" in flat(capsys.readouterr().err)
    assert main(["check", "--project", str(project), "--target", AARCH64,
                 "--python", sys.executable]) == 1  # fmt: skip
    said = flat(capsys.readouterr().err)
    assert f"--python names a Python of this machine, and the build is for {AARCH64}" in said


# ---- The generated workflows and README ----


def test_ci_builds_on_linux_aarch64_and_release_publishes_its_bundle_beside_x86_64s(
    project: Path,
) -> None:
    workflows = project / ".github" / "workflows"
    ci = yaml.safe_load((workflows / "ci.yml").read_text())
    assert "ubuntu-24.04-arm" in ci["jobs"]["build"]["strategy"]["matrix"]["os"]
    release = yaml.safe_load((workflows / "release.yml").read_text())["jobs"]["linux"]
    assert release["runs-on"] == "${{ matrix.os }}"
    assert release["strategy"]["matrix"]["include"] == [
        {"arch": "x86_64", "os": "ubuntu-latest"},
        {"arch": "aarch64", "os": "ubuntu-24.04-arm"},
    ]
    runs = [step.get("run", "") for step in release["steps"]]
    assert "python tools/hooks build --portable" in runs
    assert any("gh release upload" in run and "dist/*.tar.gz" in run for run in runs)


def test_actionlint_still_refuses_a_runner_label_github_does_not_have(
    project: Path, tmp_path: Path
) -> None:
    text = (project / ".github" / "workflows" / "ci.yml").read_text()
    broken = tmp_path / "ci.yml"
    broken.write_text(text.replace("ubuntu-24.04-arm", "ubuntu-99.04-arm"))
    linted = actionlint([broken])
    assert linted.returncode != 0
    assert 'label "ubuntu-99.04-arm" is unknown' in linted.stdout


def test_the_readme_says_what_builds_for_other_targets_from_which_host(project: Path) -> None:
    readme = (project / "README.md").read_text()
    section = readme.split("## Other targets", 1)[1].split("\n## ", 1)[0]
    assert f"tools/hooks build --target {AARCH64}" in flat(section)
    assert "PYO3_CROSS_LIB_DIR=$PWD/sysroot/usr/lib" in section
    assert f"cargo build --release --target {WINDOWS}" in section
    assert "cargo clippy --target aarch64-apple-darwin" in flat(section)
    assert "Apple's SDK" in section


# ---- Windows, linked here ----

# Each allocator answer allowed on Windows, and each subsystem, in three builds;
# the CPython version each links (its DLL's name).
WINDOWS_PROJECTS = {
    "win-console": ({"windows_subsystem": "console"}, "3.9"),
    "win-gui-mi-sn": (
        {"windows_subsystem": "windows", "global_allocator": "mimalloc",
         "python_allocator": "snmalloc"},
        "3.15",
    ),
    "win-gui-sn-mi": (
        {"windows_subsystem": "windows", "global_allocator": "snmalloc",
         "python_allocator": "mimalloc"},
        "3.15",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class PeFacts:
    subsystem: str
    dlls: list[str]
    manifests: list[bytes]


def pe_facts(exe: Path) -> PeFacts:
    """What the PE headers say, read with pefile."""
    try:
        import pefile
    except ImportError:
        missing("pefile is a test dependency (pyproject's test group)")
        raise
    pe = pefile.PE(str(exe), fast_load=True)
    pe.parse_data_directories(
        directories=[
            pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_IMPORT"],
            pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_RESOURCE"],
        ]
    )
    manifests = []
    resources = getattr(pe, "DIRECTORY_ENTRY_RESOURCE", None)
    for kind in resources.entries if resources else []:
        if kind.id == pefile.RESOURCE_TYPE["RT_MANIFEST"]:
            for name in kind.directory.entries:
                for language in name.directory.entries:
                    data = language.data.struct
                    manifests.append(pe.get_data(data.OffsetToData, data.Size))
    return PeFacts(
        subsystem=pefile.SUBSYSTEM_TYPE[pe.OPTIONAL_HEADER.Subsystem],
        dlls=[entry.dll.decode().lower() for entry in pe.DIRECTORY_ENTRY_IMPORT],
        manifests=manifests,
    )


@pytest.mark.e2e
@pytest.mark.parametrize("name", WINDOWS_PROJECTS)
def test_the_windows_build_links_with_its_subsystem_manifest_and_python_dll_and_clippy_is_clean(
    name: str, tmp_path: Path, cargo_target_root: Path
) -> None:
    crossroots.need_rust_targets(WINDOWS)
    crossroots.need_tools(
        "x86_64-w64-mingw32-gcc", "x86_64-w64-mingw32-g++", "x86_64-w64-mingw32-windres"
    )
    answers, minor = WINDOWS_PROJECTS[name]
    project = render(tmp_path / name, {"project_name": name, **answers})
    target_dir = cargo_target_root / "pyo3-windows"
    env = {"PYO3_CROSS_PYTHON_VERSION": minor}

    built = run_cargo(project, target_dir, "build", "--locked", "--target", WINDOWS, env=env)
    assert built.returncode == 0, built.stderr[-4000:]
    assert "is not embedded" not in built.stderr
    assert "could not ask" not in built.stderr
    facts = pe_facts(target_dir / WINDOWS / "debug" / f"{name}.exe")
    gui = answers["windows_subsystem"] == "windows"
    assert facts.subsystem == f"IMAGE_SUBSYSTEM_WINDOWS_{'GUI' if gui else 'CUI'}"
    assert facts.manifests == [(project / f"{name}.exe.manifest").read_bytes()]
    assert f"python{minor.replace('.', '')}.dll" in facts.dlls

    clippy = run_cargo(
        project, target_dir, "clippy", "--locked", "--all-targets", "--target", WINDOWS,
        "--", "-D", "warnings", env=env,
    )  # fmt: skip
    assert clippy.returncode == 0, clippy.stderr[-4000:]


# ---- macOS, checked here ----

MACOS_PYTHON = """\
implementation=CPython
version=3.13
shared=true
abi3=false
lib_name=python3.13
lib_dir=/Library/Frameworks/Python.framework/Versions/3.13/lib
executable=/Library/Frameworks/Python.framework/Versions/3.13/bin/python3.13
pointer_width=64
build_flags=
suppress_build_script_link_lines=false
"""


@pytest.mark.e2e
@pytest.mark.parametrize("triple", MACOS)
def test_clippy_is_clean_for_macos_with_a_pyo3_config_standing_in_for_its_python(
    triple: str, project: Path, tmp_path: Path, cargo_target_root: Path
) -> None:
    crossroots.need_rust_targets(triple)
    config = tmp_path / "macos-python.txt"
    config.write_text(MACOS_PYTHON)
    clippy = run_cargo(
        project, cargo_target_root / "pyo3-macos", "clippy", "--locked", "--all-targets",
        "--target", triple, "--", "-D", "warnings", env={"PYO3_CONFIG_FILE": str(config)},
    )  # fmt: skip
    assert clippy.returncode == 0, clippy.stderr[-4000:]
    assert "could not ask" not in clippy.stderr


# ---- Linux aarch64, built here and run under emulation ----

SYSTEM_LIBRARIES = ("libssl", "libsqlite3", "libexpat", "libffi")
# Run after IMPORTS: the files of those libraries the process has mapped.
LOADED = (
    "import pyexpat\n"
    "print(*sorted({line.split()[-1] for line in open('/proc/self/maps')\n"
    f"    if line.split()[-1].rpartition('/')[2].startswith({SYSTEM_LIBRARIES!r})}}))"
)


@dataclass(frozen=True)
class Arm64Bundle:
    minor: str
    sysroot: Path
    project: Path
    target_dir: Path  # cargo's
    folder: Path  # dist/NAME
    said: str  # what the build printed, unwrapped


def copied(folder: Path, elsewhere: Path) -> Path:
    """A copy of the bundle folder in `elsewhere` (the session's other tests
    use it too); returns the program in it."""
    shutil.copytree(folder, elsewhere / folder.name, symlinks=True)
    return elsewhere / folder.name / folder.name


_ARM64_BUNDLES: dict[str, Arm64Bundle] = {}


def arm64_bundle(minor: str, root: Path, target_root: Path) -> Arm64Bundle:
    """`tools/hooks build --target aarch64-unknown-linux-gnu --portable` of a
    default project against Debian's arm64 CPython `minor`, once a session."""
    if minor in _ARM64_BUNDLES:
        return _ARM64_BUNDLES[minor]
    if os.geteuid() != 0:
        missing("the arm64 roots need the root user (debootstrap)")
    crossroots.need_rust_targets(AARCH64)
    crossroots.need_tools("aarch64-linux-gnu-gcc", "qemu-aarch64-static", "unshare")
    try:
        sysroot = crossroots.arm64_python(minor)
    except RuntimeError as error:
        missing(f"no arm64 sysroot with CPython {minor}: {error}")
    project = render(root / f"arm-{minor}", {"project_name": "armapp"})
    target_dir = target_root / f"pyo3-aarch64-{minor}"
    env = {
        **os.environ,
        "PYO3_CROSS_LIB_DIR": str(sysroot / "usr" / "lib"),
        "CARGO_TARGET_DIR": str(target_dir),
    }
    built = subprocess.run(
        [sys.executable, "tools/hooks", "build", "--target", AARCH64, "--portable"],
        cwd=project, env=env, capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr[-4000:]
    bundle = Arm64Bundle(
        minor, sysroot, project, target_dir, project / "dist" / "armapp", flat(built.stdout)
    )
    _ARM64_BUNDLES[minor] = bundle
    return bundle


@pytest.fixture(scope="module")
def arm64_builds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("arm64-builds")


@pytest.mark.e2e
@pytest.mark.parametrize("minor", crossroots.ARM64_PYTHONS)
def test_the_aarch64_portable_bundle_runs_under_qemu_with_only_libc_and_libgcc(
    minor: str, arm64_builds: Path, cargo_target_root: Path, tmp_path: Path
) -> None:
    bundle = arm64_bundle(minor, arm64_builds, cargo_target_root)
    folder = bundle.folder
    # The report names the target, in its words and in the archive's name.
    archive = folder.parent / f"armapp-0.1.0-{AARCH64}.tar.gz"
    assert f"{folder} (" in bundle.said
    assert f"MiB, for {AARCH64}) runs" in bundle.said
    assert f"{archive} (" in bundle.said
    assert "PyO3's rule for cross builds" in bundle.said
    assert f"for {AARCH64}: the two-step build carries a copy" in bundle.said
    assert "--portable: carries" in bundle.said
    assert "libssl.so.3" in bundle.said
    assert "libexpat.so.1" in bundle.said  # Debian's libpython needs it; minbase lacks it
    assert machine_of(folder / "armapp") == "AArch64"
    assert relocation.absolute_paths(folder) == {}

    libc = crossroots.arm64_libc(minor)
    assert sorted(p.name for p in (libc / "usr" / "share" / "doc").iterdir()) == [
        "libc6", "libgcc-s1"
    ]  # fmt: skip
    program = copied(folder, tmp_path / "elsewhere")
    qemu = crossroots.need_qemu()
    # The sysroot, the project and cargo's folder are hidden: the bundle carries its Python.
    ran = relocation.run_hidden(
        Path(qemu), [*crossroots.QEMU_AARCH64[1:], "-L", str(libc), str(program), "-c", IMPORTS],
        [bundle.sysroot, bundle.project, bundle.target_dir], tmp_path / "empty",
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split()[0] == "aarch64"
    assert ran.stdout.split()[1].startswith(minor + ".")


@pytest.mark.e2e
@pytest.mark.parametrize("minor", crossroots.ARM64_PYTHONS)
def test_the_aarch64_portable_bundle_runs_in_an_arm64_minimal_debian_root(
    minor: str, arm64_builds: Path, cargo_target_root: Path, tmp_path: Path
) -> None:
    bundle = arm64_bundle(minor, arm64_builds, cargo_target_root)
    suite, _ = crossroots.ARM64_PYTHONS[minor]
    try:
        root = crossroots.arm64_root(suite)
    except RuntimeError as error:
        missing(f"no arm64 minimal Debian {suite} root: {error}")
    # No Python, SQLite or expat there (Debian's libpython needs libexpat, which
    # a manylinux policy expects), nor, in bookworm, OpenSSL (sid's apt uses it).
    absent = ["usr/bin/python3*", "*/lib/aarch64-linux-gnu/libsqlite3.so*"]
    absent += ["lib/aarch64-linux-gnu/libexpat.so*", "usr/lib/aarch64-linux-gnu/libexpat.so*"]
    absent += ["*/lib/aarch64-linux-gnu/libssl.so*"] if suite == "bookworm" else []
    assert [found for pattern in absent for found in root.glob(pattern)] == []

    program = copied(bundle.folder, tmp_path / "bundles")
    qemu = crossroots.need_qemu()
    with sidroot.mounted(root, [program.parent.parent, Path(qemu)]):
        ran = subprocess.run(
            [sidroot._tool("chroot") or "chroot", str(root), qemu, *crossroots.QEMU_AARCH64[1:],
             str(program), "-c", IMPORTS + "\n" + LOADED],
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    machine, version, *loaded = ran.stdout.split()
    assert machine == "aarch64"
    assert version.startswith(minor + ".")
    # The libraries it loaded (qemu shows the program's own mappings) are the bundle's.
    assert {Path(path).name.split(".so")[0] for path in loaded} == set(SYSTEM_LIBRARIES)
    assert all(path.startswith(f"{program.parent}/lib/") for path in loaded), loaded


def machine_of(path: Path) -> str:
    from elftools.elf.elffile import ELFFile

    with path.open("rb") as stream:
        return ELFFile(stream).get_machine_arch()
