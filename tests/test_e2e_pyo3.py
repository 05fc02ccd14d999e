"""End-to-end, pyo3 engine: Copier renders this repository, cargo builds the
project against crates.io with every CPython the engine supports (3.9 to 3.13
from pyenv, 3.14 and 3.15 inside a Debian sid root), and the program runs.

"Behaves like python" is checked side by side: each parity case runs one
command line through the built program and through the `python3` it links, in
the same folder with the same environment and stdin, and compares the exit
status, stdout and stderr (the two executables' paths made equal).

Builds share one CARGO_TARGET_DIR per linked interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from . import relocation
from .conftest import SID_MINORS, Place, cargo, copy_cli, flat, place_of, render
from .parity import (
    CASES,
    OWNS,
    PYMALLOC_STATS,
    PYTHON_USES_IT,
    RUN_PROBE,
    repl_side_by_side,
    run_side_by_side,
)

pytestmark = pytest.mark.e2e

HOST_MINORS = ("3.9", "3.10", "3.11", "3.12", "3.13")
# Parity and allocators: the oldest and newest pyenv ones, and both sid ones.
PARITY_MINORS = ("3.9", "3.12", "3.13", *SID_MINORS)
ALLOCATOR_MINORS = ("3.12", "3.14")
ALLOCATORS = ("jemalloc", "mimalloc", "snmalloc")
IMPORTS = "import ssl, sqlite3, json, decimal, ctypes, sys; print(sys.version)"


def marks(minor: str) -> list[pytest.MarkDecorator]:
    return [pytest.mark.sid] if minor in SID_MINORS else []


def minors(*chosen: str) -> list:
    return [pytest.param(minor, marks=marks(minor), id=minor) for minor in chosen]


@dataclass
class Builds:
    """Projects built once per session and linked Python, by name."""

    root: Path
    target_root: Path
    made: dict[tuple[str, str], tuple[Path, Path]] = field(default_factory=dict)

    def get(
        self, place: Place, name: str, answers: dict, *, exported: bool = False
    ) -> tuple[Path, Path]:
        """(project, binary) of a project named `name`, rendered and built once.

        `exported`: the program is linked with its symbols exported, so that
        Python reaches the allocators' own functions with ctypes.CDLL(None),
        as a test needs and a user's build does not (build.rs exports them
        only for a static libpython). `cargo rustc` passes the flag to this
        crate alone: its dependencies are the target folder's, built once."""
        key = (place.minor, name)
        if key not in self.made:
            project = render(self.root / place.minor / name, {"project_name": name, **answers})
            if exported:
                built = place.cargo(
                    project, self.target_dir(place), "rustc", "--locked", "--bin", name,
                    "--", "-C", "link-arg=-Wl,--export-dynamic",
                )  # fmt: skip
                assert built.returncode == 0, built.stderr[-4000:]
                binary = self.target_dir(place) / "debug" / name
            else:
                binary = place.built(project, self.target_dir(place), "--locked")
            self.made[key] = (project, binary)
        return self.made[key]

    def target_dir(self, place: Place) -> Path:
        return self.target_root / f"pyo3-{place.minor}"


@pytest.fixture(scope="session")
def builds(tmp_path_factory: pytest.TempPathFactory, cargo_target_root: Path) -> Builds:
    return Builds(tmp_path_factory.mktemp("pyo3-builds"), cargo_target_root)


@pytest.fixture
def place(request: pytest.FixtureRequest) -> Place:
    return place_of(request.param, request)


# ---- Every supported Python ----


@pytest.mark.parametrize("place", minors(*HOST_MINORS, *SID_MINORS), indirect=True)
def test_default_project_builds_locked_and_runs_the_standard_library_and_c_extensions(
    place: Place, tmp_path: Path, builds: Builds
) -> None:
    project = tmp_path / "app"
    if place.root is None:
        # As a user would: the after-copy task checks the Python too.
        result = copy_cli(project, "project_name=app", env={"PYO3_PYTHON": place.python})
        assert result.returncode == 0, result.stderr
        assert "pyo3 0.30.1 supports CPython 3.9 to 3.15: good." in flat(result.stdout)
    else:
        render(project, {"project_name": "app"})  # the hooks run on this machine's Python
    lock = (project / "Cargo.lock").read_text()
    binary = place.built(project, builds.target_dir(place), "--locked")
    # The shipped lock file is exactly what Cargo writes: the build left it alone.
    assert (project / "Cargo.lock").read_text() == lock

    elsewhere = tmp_path / "somewhere" / "else"
    ran = place.run([str(binary), "-c", IMPORTS], cwd=elsewhere)
    assert ran.returncode == 0, ran.stderr
    python = place.run([place.python, "-c", "import sys; print(sys.version)"], cwd=elsewhere)
    assert ran.stdout == python.stdout
    assert ran.stdout.startswith(place.minor + ".")
    version = place.run([str(binary), "--version"], cwd=elsewhere)
    assert (version.returncode, version.stdout) == (0, f"Python {python.stdout.split()[0]}\n")


# ---- Parity with python ----


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("place", minors(*PARITY_MINORS), indirect=True)
def test_the_program_behaves_like_the_python_it_links(
    place: Place, case: str, builds: Builds, tmp_path: Path
) -> None:
    _, binary = builds.get(place, "app", {})
    ours, theirs = run_side_by_side(place, binary, case, tmp_path)
    assert ours == theirs


@pytest.mark.parametrize("place", minors(*PARITY_MINORS), indirect=True)
def test_the_interactive_prompt_on_a_terminal_behaves_like_pythons(
    place: Place, builds: Builds, tmp_path: Path
) -> None:
    _, binary = builds.get(place, "app", {})
    ours, theirs = repl_side_by_side(place, binary, tmp_path)
    assert ours == theirs
    banner, probe, _ = ours
    assert banner.startswith(f"Python {place.minor}.")
    assert probe.startswith("42 0 [''] ''")
    # The REPL python starts: PyREPL from 3.13 on (a terminal, TERM set), else
    # the readline one.
    assert ("'_pyrepl.main'" in probe) == (tuple(map(int, place.minor.split("."))) >= (3, 13))
    # The exit status of `raise SystemExit(5)` is compared, not fixed: 3.13.0's
    # PyREPL exits with 1 (both programs alike).


VENV_PROBE = "import sys; print(sys.prefix, sys.base_prefix, sys.executable, sys._base_executable)"


def venv_story(place: Place, executable: str, folder: Path) -> list[str]:
    """What `executable -m venv env`, then a venv made by that venv's python,
    look like from inside, with `executable`'s real path and its folder
    written BASE and BASEDIR, and `folder` FOLDER."""
    steps = [
        [executable, "-m", "venv", "--without-pip", "env"],
        ["env/bin/python", "-c", VENV_PROBE],
        ["env/bin/python", "-m", "venv", "--without-pip", "nested"],
        ["nested/bin/python", "-c", VENV_PROBE],
        ["nested/bin/python", "-c", "import os; print(os.path.realpath('nested/bin/python'))"],
        ["cat", "nested/pyvenv.cfg"],
    ]
    where = "import os, sys; print(os.path.realpath(sys.executable))"
    base = place.run([executable, "-c", where], folder).stdout.strip()
    told = []
    for argv in steps:
        ran = place.run(argv, folder)
        assert ran.returncode == 0, (argv, ran.stderr)
        told.append(ran.stdout.replace(base, "BASE").replace(os.path.dirname(base), "BASEDIR"))
    return [text.replace(str(folder), "FOLDER") for text in told if text]


@pytest.mark.parametrize("place", minors(*PARITY_MINORS), indirect=True)
def test_a_venv_made_by_the_program_has_the_program_as_its_base_as_python_does(
    place: Place, builds: Builds, tmp_path: Path
) -> None:
    _, binary = builds.get(place, "app", {})
    ours = venv_story(place, str(binary), tmp_path / "ours")
    theirs = venv_story(place, place.python, tmp_path / "theirs")
    assert ours == theirs
    # From 3.11, CPython finds the base executable through pyvenv.cfg, even
    # though the program sets Python's home (which turns CPython's own search
    # off): so a venv made from the venv links to the program itself.
    if tuple(map(int, place.minor.split("."))) >= (3, 11):
        assert ours[0].split()[-1] == "BASE"
        assert ours[2] == "BASE\n"
        assert "home = BASEDIR\n" in ours[3]


@pytest.mark.parametrize("place", minors(*PARITY_MINORS), indirect=True)
def test_module_run_mode_is_python_dash_m(place: Place, builds: Builds, tmp_path: Path) -> None:
    _, binary = builds.get(place, "runmod", {"run_mode": "module", "run_module": "probe"})
    (tmp_path / "probe.py").write_text(RUN_PROBE + "\nraise SystemExit(len(sys.argv))\n")
    ours = place.run([str(binary), "a", "-X", "dev", "--version"], cwd=tmp_path)
    theirs = place.run([place.python, "-m", "probe", "a", "-X", "dev", "--version"], cwd=tmp_path)
    assert (ours.returncode, ours.stdout.replace(str(binary), "PROGRAM"), ours.stderr) == (
        theirs.returncode,
        theirs.stdout.replace(place.python, "PROGRAM"),
        theirs.stderr,
    )
    assert ours.returncode == 5


@pytest.mark.parametrize("place", minors(*PARITY_MINORS), indirect=True)
def test_code_run_mode_is_python_dash_c(place: Place, builds: Builds, tmp_path: Path) -> None:
    _, binary = builds.get(place, "runcode", {"run_mode": "code", "run_code": RUN_PROBE})
    ours = place.run([str(binary), "a", "-c", "b"], cwd=tmp_path)
    theirs = place.run([place.python, "-c", RUN_PROBE, "a", "-c", "b"], cwd=tmp_path)
    assert (ours.returncode, ours.stdout.replace(str(binary), "PROGRAM"), ours.stderr) == (
        theirs.returncode,
        theirs.stdout.replace(place.python, "PROGRAM"),
        theirs.stderr,
    )
    assert "['-c', 'a', '-c', 'b'] ''" in ours.stdout


@pytest.mark.parametrize("place", minors("3.12"), indirect=True)
def test_pythonhome_set_by_the_user_wins_as_with_python(
    place: Place, builds: Builds, tmp_path: Path
) -> None:
    _, binary = builds.get(place, "app", {})
    env = {"PYTHONHOME": str(tmp_path / "no-such-home")}
    ours = place.run([str(binary), "-c", "pass"], cwd=tmp_path, env=env)
    theirs = place.run([place.python, "-c", "pass"], cwd=tmp_path, env=env)
    assert ours.returncode == theirs.returncode != 0
    assert "PYTHONHOME = '" + env["PYTHONHOME"] + "'" in ours.stderr
    assert "ModuleNotFoundError: No module named 'encodings'" in ours.stderr


# ---- Allocators ----

HEAVY = (
    "import json; data = [{'i': i, 's': str(i) * 20} for i in range(300_000)]; "
    "del data[::2]; print(len(json.dumps(data)))"
)
HEAVY_RESULT = None


def heavy_result() -> str:
    global HEAVY_RESULT
    if HEAVY_RESULT is None:
        HEAVY_RESULT = subprocess.run(
            [sys.executable, "-c", HEAVY], capture_output=True, text=True, check=True
        ).stdout
    return HEAVY_RESULT


@pytest.mark.parametrize("allocator", ALLOCATORS)
@pytest.mark.parametrize("place", minors(*ALLOCATOR_MINORS), indirect=True)
def test_each_python_allocator_serves_python_objects_with_and_without_dev_mode(
    place: Place, allocator: str, builds: Builds, tmp_path: Path
) -> None:
    _, binary = builds.get(place, f"py-{allocator}", {"python_allocator": allocator}, exported=True)
    code = PYTHON_USES_IT.format(owns=OWNS[allocator], counter_check=True)
    for dev in ([], ["-X", "dev"]):
        owned = place.run([str(binary), *dev, "-c", code], cwd=tmp_path)
        assert (owned.returncode, owned.stdout) == (0, "owned\n"), owned.stderr
        heavy = place.run([str(binary), *dev, "-c", HEAVY], cwd=tmp_path)
        assert (heavy.returncode, heavy.stdout) == (0, heavy_result()), heavy.stderr
    # -X dev keeps its debug hooks over the allocator: they catch a misuse.
    dev_mode = place.run(
        [str(binary), "-X", "dev", "-c", "import sys; print(sys.flags.dev_mode)"], cwd=tmp_path
    )
    assert (dev_mode.returncode, dev_mode.stdout) == (0, "True\n"), dev_mode.stderr
    # pymalloc is gone (it prints its statistics only when it serves objects),
    # unless a PYTHONMALLOC the user sets asks for it, as with python. Each
    # run must get past the statistics: a crash in them prints none either.
    stats = [str(binary), "-c", "import sys; sys._debugmallocstats(); print('done')"]
    gone = place.run(stats, cwd=tmp_path)
    assert (gone.returncode, gone.stdout) == (0, "done\n"), gone.stderr
    assert PYMALLOC_STATS not in gone.stderr
    chosen = place.run(stats, cwd=tmp_path, env={"PYTHONMALLOC": "pymalloc"})
    assert (chosen.returncode, chosen.stdout) == (0, "done\n"), chosen.stderr
    assert PYMALLOC_STATS in chosen.stderr


# How to see that an allocator served Rust's allocations (ctypes finds the
# allocator's functions in these programs, linked with --export-dynamic).
# Python keeps its own allocator in these projects, so the allocator has no
# other user: mimalloc commits and snmalloc reserves memory only when Rust
# allocated through it. jemalloc (built without statistics) is watched with
# its own allocation hooks around a known Rust allocation: the Rust module's
# function refusing a keyword argument builds its TypeError in Rust (pyo3
# boxes the error's arguments; with #[pyfunction] it formats the message in
# Rust too), while CPython's int() refusing one allocates nothing through
# jemalloc.
JEMALLOC_HOOKS = """
import ctypes, {module}
ctl = ctypes.CDLL(None)._rjem_mallctl
ctl.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t),
                ctypes.c_void_p, ctypes.c_size_t]
# jemalloc's hooks_t: alloc(extra, kind, result, result_raw, args_raw[3]), dalloc,
# expand, extra.
ALLOC = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p,
                         ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t))
class Hooks(ctypes.Structure):
    _fields_ = [("alloc", ALLOC), ("dalloc", ctypes.c_void_p), ("expand", ctypes.c_void_p),
                ("extra", ctypes.c_void_p)]
sizes = []
hooks = Hooks(ALLOC(lambda extra, kind, result, raw, args: sizes.append(args[0])))
handle, length = ctypes.c_void_p(), ctypes.c_size_t(ctypes.sizeof(ctypes.c_void_p))
assert ctl(b"experimental.hooks.install", ctypes.byref(handle), ctypes.byref(length),
           ctypes.byref(hooks), ctypes.sizeof(hooks)) == 0
def allocations(call, times=100):
    sizes.clear()
    for _ in range(times):
        call()
    return len(sizes)
# greet() builds its answer in a Rust String; Python builds the same string
# with its own allocator.
name = "x" * 1000
rust = allocations(lambda: {module}.greet(name))
python = allocations(lambda: "Hello, {{}}!".format(name))
assert ctl(b"experimental.hooks.remove", None, None, ctypes.byref(handle),
           ctypes.sizeof(handle)) == 0
print("served" if rust >= 100 and python == 0 else f"rust: {{rust}}, python: {{python}}")
"""
RUST_USES_IT = {
    "mimalloc": (
        "import ctypes; n = [ctypes.c_size_t() for _ in range(8)]; "
        "ctypes.CDLL(None).mi_process_info(*map(ctypes.byref, n)); "
        "print('committed' if n[5].value > 0 else 'unused')",
        "committed\n",
    ),
    "jemalloc": (JEMALLOC_HOOKS.format(module="rust_jemalloc_rs"), "served\n"),
    "snmalloc": (
        "import ctypes; current, peak = ctypes.c_size_t(), ctypes.c_size_t(); "
        "ctypes.CDLL(None).sn_rust_statistics(ctypes.byref(current), ctypes.byref(peak)); "
        "print('reserved' if current.value > 0 else 'unused')",
        "reserved\n",
    ),
}


@pytest.mark.parametrize("allocator", ALLOCATORS)
@pytest.mark.parametrize("place", minors(*ALLOCATOR_MINORS), indirect=True)
def test_each_rust_global_allocator_serves_rust_and_python_still_runs(
    place: Place, allocator: str, builds: Builds, tmp_path: Path
) -> None:
    _, binary = builds.get(
        place, f"rust-{allocator}", {"global_allocator": allocator}, exported=True
    )
    code, says = RUST_USES_IT[allocator]
    ran = place.run([str(binary), "-c", code], cwd=tmp_path)
    assert (ran.returncode, ran.stdout) == (0, says), ran.stderr
    for dev in ([], ["-X", "dev"]):
        heavy = place.run([str(binary), *dev, "-c", HEAVY], cwd=tmp_path)
        assert (heavy.returncode, heavy.stdout) == (0, heavy_result()), heavy.stderr


def test_both_jemalloc_features_build_jemalloc_alike_so_one_c_build_serves_both(
    tmp_path: Path,
) -> None:
    # Cargo builds a crate again for every distinct feature set, and jemalloc's
    # C library takes about two minutes here: switching between the Rust and
    # the Python allocator feature must not pay that twice.
    project = render(tmp_path / "app", {"project_name": "app"})
    features = []
    for feature in ("global-allocator-jemalloc", "allocator-jemalloc"):
        tree = cargo(
            project, tmp_path / "target", "tree", "--locked", "--no-default-features",
            "--features", f"build-mode-standalone {feature}", "--invert", "tikv-jemalloc-sys",
            "--depth", "0", "--format", "{p} [{f}]",
        )  # fmt: skip
        assert tree.returncode == 0, tree.stderr
        features.append(tree.stdout)
    assert features[0].startswith("tikv-jemalloc-sys v")
    assert features[0] == features[1]


# ---- The generated code and its test ----


@pytest.mark.parametrize("place", minors("3.12"), indirect=True)
def test_generated_code_is_clean_for_rustfmt_and_clippy_with_every_allocator(
    place: Place, builds: Builds
) -> None:
    project, _ = builds.get(place, "app", {})
    fmt = place.cargo(project, builds.target_dir(place), "fmt", "--check")
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    for allocator in ("", *ALLOCATORS):
        features = f"global-allocator-{allocator} allocator-{allocator}" if allocator else ""
        clippy = place.cargo(
            project, builds.target_dir(place), "clippy", "--locked", "--all-targets",
            "--features", features, "--", "-D", "warnings",
        )  # fmt: skip
        assert clippy.returncode == 0, f"{allocator}:\n{clippy.stderr[-4000:]}"


@pytest.mark.parametrize("place", minors("3.12", "3.14"), indirect=True)
def test_cargo_test_runs_python_code_that_calls_the_rust_module_and_the_program_imports_it(
    place: Place, builds: Builds, tmp_path: Path
) -> None:
    project, binary = builds.get(place, "app", {})
    tested = place.cargo(project, builds.target_dir(place), "test", "--locked")
    assert tested.returncode == 0, tested.stdout + tested.stderr[-4000:]
    assert "python_code_imports_the_module_and_calls_the_rust_function ... ok" in tested.stdout
    ran = place.run([str(binary), "-c", "import app_rs; print(app_rs.add(40, 2))"], cwd=tmp_path)
    assert (ran.returncode, ran.stdout) == (0, "42\n"), ran.stderr


# ---- The two-step build ----


@pytest.mark.parametrize("place", minors("3.12", "3.13"), indirect=True)
def test_run_build_makes_a_program_that_runs_moved_elsewhere_without_its_python(
    place: Place, builds: Builds, tmp_path: Path
) -> None:
    project = tmp_path / "built"
    # Its own folder: PYO3_CONFIG_FILE instead of PYO3_PYTHON rebuilds pyo3.
    target_dir = builds.target_root / f"pyo3-{place.minor}-prebuilt"
    env = {"CARGO_TARGET_DIR": str(target_dir), "PYO3_PYTHON": place.python}
    result = copy_cli(project, "project_name=built", "run_build=true", env=env)
    assert result.returncode == 0, result.stderr
    out = flat(result.stdout)
    config = project / "target" / "out" / "pyo3-build-config-file.txt"
    assert "Step 1 of 2" in out
    assert "Features: build-mode-prebuilt-artifacts" in out
    assert f"Environment: PYO3_CONFIG_FILE={config}" in out
    assert f"executable={place.python}" in config.read_text()
    folder = project / "dist" / "built"
    archive = project / "dist" / "built-0.1.0-x86_64-unknown-linux-gnu.tar.gz"
    assert f"Built {folder / 'built'}" in out
    assert f"{archive} (" in out
    with tarfile.open(archive) as tar:
        assert {name.split("/")[0] for name in tar.getnames()} == {"built"}
    assert "It needs these libraries from the target system:" in out
    assert "libssl.so.3" in out

    program = relocation.moved(folder, tmp_path / "elsewhere" / "built")
    prefix = Path(place.run([place.python, "-c", "import sys; print(sys.base_prefix)"],
                            cwd=tmp_path).stdout.strip())  # fmt: skip
    hidden = [prefix, project, target_dir]
    relocation.check_moved(
        lambda args, stdin: relocation.run_hidden(program, args, hidden, tmp_path / "empty", stdin),
        program,
    )
    assert relocation.absolute_paths(program.parent) == {}


@pytest.mark.parametrize("place", minors("3.12"), indirect=True)
def test_a_second_build_with_nothing_changed_recompiles_nothing(
    place: Place, builds: Builds, tmp_path: Path
) -> None:
    project = render(tmp_path / "built", {"project_name": "built"})
    env = {
        **os.environ,
        "CARGO_TARGET_DIR": str(builds.target_root / f"pyo3-{place.minor}-prebuilt"),
        "PYO3_PYTHON": place.python,
    }
    hooks = [sys.executable, "tools/hooks", "build"]
    first = subprocess.run(hooks, cwd=project, env=env, capture_output=True, text=True,
                           timeout=1800, check=False)  # fmt: skip
    assert first.returncode == 0, first.stdout + first.stderr
    again = subprocess.run(hooks, cwd=project, env=env, capture_output=True, text=True,
                           timeout=600, check=False)  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    # Its time (issue 11: under 5 s) is a row of `nox -s bench`, not a test.
    assert "Compiling" not in again.stderr, again.stderr
    assert "Finished `release` profile" in again.stderr, again.stderr


@pytest.mark.parametrize("place", minors("3.12", "3.13"), indirect=True)
def test_portable_carries_the_system_libraries_and_runs_in_a_minimal_debian_root(
    place: Place, builds: Builds, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    root = request.getfixturevalue("minimal_root")
    project = render(tmp_path / "built", {"project_name": "built"})
    env = {
        "CARGO_TARGET_DIR": str(builds.target_root / f"pyo3-{place.minor}-prebuilt"),
        "PYO3_PYTHON": place.python,
    }
    folder = relocation.build_portable(project, env)
    relocation.check_in_minimal_root(root, folder, tmp_path / "bundles")


@pytest.mark.parametrize("place", minors("3.12"), indirect=True)
def test_prebuilt_mode_without_its_pyo3_config_file_explains_the_two_step_build(
    place: Place, builds: Builds
) -> None:
    project, _ = builds.get(place, "app", {})
    result = place.cargo(
        project, builds.target_dir(place), "build", "--no-default-features",
        "--features", "build-mode-prebuilt-artifacts",
    )  # fmt: skip
    assert result.returncode != 0
    error = flat(result.stderr)
    assert "build-mode-prebuilt-artifacts links the Python of the artifacts" in error
    assert "but it is not set" in error
    assert "python3 tools/hooks build" in error


@pytest.mark.parametrize(
    ("features", "says"),
    [
        ("global-allocator-jemalloc global-allocator-mimalloc", "one Rust global allocator"),
        ("allocator-mimalloc allocator-snmalloc", "one Python allocator"),
    ],
    ids=["two-global-allocators", "two-python-allocators"],
)
@pytest.mark.parametrize("place", minors("3.12"), indirect=True)
def test_conflicting_features_are_refused_with_the_fix(
    place: Place, features: str, says: str, builds: Builds
) -> None:
    project, _ = builds.get(place, "app", {})
    result = place.cargo(project, builds.target_dir(place), "build", "--features", features)
    assert result.returncode != 0
    assert says in flat(result.stderr)


@pytest.mark.parametrize("place", minors("3.8"), indirect=True)
def test_a_python_older_than_pyo3_supports_stops_the_build(place: Place, tmp_path: Path) -> None:
    project = render(tmp_path / "old", {"project_name": "old"})
    result = place.cargo(project, tmp_path / "target", "build")
    assert result.returncode != 0
    assert "lower than PyO3's minimum supported version (3.9)" in flat(result.stderr)
