"""End-to-end, pyo3 engine: the generated project as a model for Rust
developers (issue 24) and `._pth` files (issue 20). Copier renders this
repository, cargo builds the project, and the program runs: the interpreter
API Rust code calls Python through, the project's own tests (`cargo test`,
rustfmt and clippy for every run mode and allocator), the command line from
C's argv, PYTHONHOME with -E/-I, the refusal of a mismatched libpython, the
`#[pymodule]` Rust module, panics and Rust's stdout, and `._pth` files beside
the program, compared with the `python3` the program links.

Builds share tests/test_e2e_pyo3.py's target folders (one CARGO_TARGET_DIR
per linked interpreter).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import Place, cargo, flat, missing, place_of, render, require
from .parity import RUN_PROBE
from .test_e2e_pyo3 import ALLOCATORS, Builds, minors

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def builds(tmp_path_factory: pytest.TempPathFactory, cargo_target_root: Path) -> Builds:
    """Projects built once per session, in the target folders (by linked
    Python) that tests/test_e2e_pyo3.py uses: only the project recompiles."""
    return Builds(tmp_path_factory.mktemp("pyo3-model-builds"), cargo_target_root)


@pytest.fixture
def place(request: pytest.FixtureRequest) -> Place:
    return place_of(request.param, request)


# A project of each run mode.
RUN_MODES = {
    "app": {},
    "runmod": {"run_mode": "module", "run_module": "probe"},
    "runcode": {"run_mode": "code", "run_code": RUN_PROBE},
    # The app in python/runentry, called as a console script (runentry:main).
    "runentry": {"run_mode": "module"},
    "runrust": {"run_mode": "rust"},
}


# ---- The project's own tests and lints ----

# Tests of the generated project that each run mode must pass (and so have).
UNIT_TESTS = [
    "interpreter::tests::the_command_line_is_read_from_c_argv",
    "interpreter::tests::e_and_i_are_found_among_pythons_options_only",
    "interpreter::tests::origin_is_the_programs_folder",
    "interpreter::tests::a_venv_python_linked_to_the_program_has_it_as_its_base",
    "interpreter::tests::the_test_interpreter_has_no_python_signal_handlers",
    "interpreter::tests::module_code_and_entry_point_modes_put_the_program_arguments_after_m_or_c",
    "rust_module::tests::python_code_imports_the_module_and_calls_the_rust_function",
    "python_code_calls_the_rust_module",
    "a_child_that_multiprocessing_starts_runs_as_python_would",
]
OWN_TESTS = {
    "app": [*UNIT_TESTS, "version_prints_pythons_version", "exit_statuses_are_pythons"],
    "runmod": UNIT_TESTS,
    "runcode": UNIT_TESTS,
    "runentry": [
        *UNIT_TESTS,
        "every_argument_goes_to_the_app_whose_usage_names_the_program",
        "python_variables_and_the_current_folder_change_nothing",
    ],
    "runrust": [
        *UNIT_TESTS,
        "rust_calls_the_app_with_the_arguments_and_uses_what_it_returns",
        "a_python_exception_prints_pythons_traceback_and_exits_with_1",
        "python_variables_and_the_current_folder_change_nothing",
    ],
}


@pytest.mark.parametrize("name", RUN_MODES)
@pytest.mark.parametrize("place", minors("3.12"), indirect=True)
def test_each_run_mode_passes_its_own_tests_rustfmt_and_clippy(
    place: Place, name: str, builds: Builds
) -> None:
    project, _ = builds.get(place, name, RUN_MODES[name])
    target = builds.target_dir(place)
    fmt = place.cargo(project, target, "fmt", "--check")
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    clippy = place.cargo(project, target, "clippy", "--locked", "--all-targets", "--", "-D",
                         "warnings")  # fmt: skip
    assert clippy.returncode == 0, clippy.stderr[-4000:]
    tested = place.cargo(project, target, "test", "--locked")
    assert tested.returncode == 0, tested.stdout + tested.stderr[-4000:]
    # Rust calling Python through the interpreter API (tests/rust_calls_python.rs).
    assert "rust_calls_python: ok" in tested.stdout
    for test in OWN_TESTS[name]:
        assert f"test {test} ... ok" in tested.stdout


@pytest.mark.parametrize("allocator", ALLOCATORS)
@pytest.mark.parametrize("place", minors("3.12"), indirect=True)
def test_the_projects_own_tests_pass_with_each_allocator(
    place: Place, allocator: str, builds: Builds
) -> None:
    project, _ = builds.get(place, "app", {})
    features = f"global-allocator-{allocator} allocator-{allocator}"
    tested = place.cargo(project, builds.target_dir(place), "test", "--locked", "--features",
                         features)  # fmt: skip
    assert tested.returncode == 0, tested.stdout + tested.stderr[-4000:]
    assert "rust_calls_python: ok" in tested.stdout


@pytest.mark.parametrize("place", minors("3.14"), indirect=True)
def test_rust_calls_python_through_the_interpreter_api_on_the_newest_python(
    place: Place, builds: Builds
) -> None:
    project, _ = builds.get(place, "app", {})
    tested = place.cargo(project, builds.target_dir(place), "test", "--locked")
    assert tested.returncode == 0, tested.stdout + tested.stderr[-4000:]
    assert "rust_calls_python: ok" in tested.stdout


# ---- The command line ----

# Starts argv[1] with argv[0] set to /crafted/argv0 and the code argv[2].
EXEC_CRAFTED = "import os, sys; os.execv(sys.argv[1], ['/crafted/argv0', '-c', sys.argv[2]])"
ARGV_PROBE = "import sys; print(sys.argv, sys.orig_argv, sys.executable)"


@pytest.mark.parametrize("place", minors("3.12", "3.14"), indirect=True)
def test_the_command_line_is_cs_argv_with_a_crafted_argv0_as_with_python(
    place: Place, builds: Builds, tmp_path: Path
) -> None:
    _, binary = builds.get(place, "app", {})
    ours, theirs = (
        place.run([place.python, "-c", EXEC_CRAFTED, executable, ARGV_PROBE], tmp_path)
        for executable in (str(binary), place.python)
    )
    assert ours.returncode == 0, ours.stderr
    assert (ours.returncode, ours.stdout, ours.stderr) == (
        theirs.returncode,
        theirs.stdout,
        theirs.stderr,
    )
    assert ours.stdout.startswith("['-c'] ['/crafted/argv0', '-c', ")
    assert ours.stdout.endswith(" /crafted/argv0\n")


# ---- Python's home ----

SHOW_PREFIX = "import sys; print(sys.prefix)"


@pytest.mark.parametrize("place", minors("3.12"), indirect=True)
def test_pythonhome_ignored_by_dash_i_keeps_the_home_of_a_python_whose_built_in_prefix_is_gone(
    place: Place, builds: Builds, tmp_path: Path
) -> None:
    # As with uv's and python-build-standalone's builds: a Python moved away
    # from the prefix it was built for (a copy of pyenv's, the original
    # hidden under `unshare -m`). `python3 -I` ignores PYTHONHOME and finds
    # its standard library beside itself; the program must not drop its
    # recorded home for a PYTHONHOME that -I ignores, or CPython falls back to
    # the built-in prefix and dies ("failed to get the Python codec").
    if os.geteuid() != 0:
        missing("hiding a folder with unshare -m needs the root user")
    require("unshare")
    original = Path(place.python).parent.parent
    # Kept with the builds, so the build that links it is reused.
    copy = builds.target_root / f"python-{place.minor}-copy"
    if not (copy / "bin").is_dir():
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(original, copy, symlinks=True)
    python = copy / "bin" / Path(place.python).name
    env = {"LD_LIBRARY_PATH": str(copy / "lib")}  # the copy's libpython
    project = render(tmp_path / "app", {"project_name": "app"})
    target = builds.target_root / f"pyo3-{place.minor}-copy"
    build = cargo(project, target, "build", "--locked", env={**env, "PYO3_PYTHON": str(python)})
    assert build.returncode == 0, build.stderr[-4000:]

    hidden = ["unshare", "-m", "sh", "-c", 'mount -t tmpfs none "$0" && exec "$@"', str(original)]
    ran = {}
    for name, executable in (("python", python), ("program", target / "debug" / "app")):
        ran[name] = subprocess.run(
            [*hidden, str(executable), "-I", "-c", SHOW_PREFIX],
            capture_output=True, text=True, timeout=120, check=False,
            env={**os.environ, **env, "PYTHONHOME": "/nonexistent"},
        )  # fmt: skip
    assert (ran["python"].returncode, ran["python"].stdout) == (0, f"{copy}\n"), ran["python"]
    assert (ran["program"].returncode, ran["program"].stdout) == (0, f"{copy}\n"), ran["program"]
    # The original was hidden indeed: without -I, both die alike.
    for name in ran:
        gone = subprocess.run(
            [*hidden, str(python if name == "python" else target / "debug" / "app"), "-c", "pass"],
            capture_output=True, text=True, timeout=120, check=False,
            env={**os.environ, **env, "PYTHONHOME": "/nonexistent"},
        )  # fmt: skip
        assert gone.returncode == 1, gone
        assert "No module named 'encodings'" in gone.stderr


@pytest.mark.parametrize("place", minors("3.12", "3.14"), indirect=True)
@pytest.mark.parametrize("options", [["-I"], ["-E"], ["-bIS"], ["-X", "dev", "-E"]])
def test_pythonhome_is_ignored_with_dash_e_or_dash_i_as_with_python(
    place: Place, options: list[str], builds: Builds, tmp_path: Path
) -> None:
    _, binary = builds.get(place, "app", {})
    env = {"PYTHONHOME": str(tmp_path / "no-such-home")}
    code = "import sys; print(sys.base_prefix == sys.prefix, sys.flags.ignore_environment)"
    ours = place.run([str(binary), *options, "-c", code], cwd=tmp_path, env=env)
    theirs = place.run([place.python, *options, "-c", code], cwd=tmp_path, env=env)
    assert (ours.returncode, ours.stdout, ours.stderr) == (0, "True 1\n", "")
    assert (theirs.returncode, theirs.stdout, theirs.stderr) == (0, "True 1\n", "")


# ---- The CPython version ----

# A stand-in for a Python: the real one, as its own sys.executable (so that
# pyo3 records the stand-in), except that it answers build.rs's question (the
# one that names sys.hexversion) with another version.
STAND_IN = """#!/bin/bash
case "$*" in
  *sys.hexversion*)
    exec {python} -S -c "import sys; sys.stdout.write('{hexversion} ' + sys.base_prefix)" ;;
esac
exec -a "$0" {python} "$@"
"""


def built_with_stand_in(place: Place, builds: Builds, tmp_path: Path, hexversion: int):
    """`cargo build` of a new project, linking `place`'s Python through a
    stand-in that tells build.rs it is `hexversion` (its own target folder)."""
    script = STAND_IN.format(python=place.python, hexversion=hexversion)
    # pyo3 asks a Python again only when PYO3_PYTHON changes: a new script
    # gets a new name.
    name = f"{hexversion:08x}-{hashlib.sha256(script.encode()).hexdigest()[:8]}"
    stand_in = builds.target_root / "stand-ins" / f"python{place.minor}-{name}"
    stand_in.parent.mkdir(parents=True, exist_ok=True)
    stand_in.write_text(script)
    stand_in.chmod(0o755)
    project = render(tmp_path / "app", {"project_name": "app"})
    target = builds.target_root / f"pyo3-{place.minor}-{hexversion:08x}"
    result = cargo(project, target, "build", "--locked", env={"PYO3_PYTHON": str(stand_in)})
    return result, target / "debug" / "app"


@pytest.mark.parametrize("place", minors("3.12"), indirect=True)
def test_an_alpha_or_beta_python_is_refused_at_build_time(
    place: Place, builds: Builds, tmp_path: Path
) -> None:
    result, _ = built_with_stand_in(place, builds, tmp_path, 0x030C00A3)
    assert result.returncode != 0
    error = flat(result.stderr)
    assert "pyo3 found CPython 3.12.0a3 (" in error
    assert "a pre-release: its C structs may still change" in error
    assert "Set PYO3_PYTHON to a CPython 3.9 to 3.15" in error


@pytest.mark.parametrize("place", minors("3.12"), indirect=True)
def test_a_program_refuses_to_start_with_a_libpython_of_another_version_than_it_was_built_for(
    place: Place, builds: Builds, tmp_path: Path
) -> None:
    result, binary = built_with_stand_in(place, builds, tmp_path, 0x030B07F0)
    assert result.returncode == 0, result.stderr[-4000:]
    ran = place.run([str(binary), "-c", "print('started')"], cwd=tmp_path)
    assert (ran.returncode, ran.stdout) == (1, "")
    assert ran.stderr.startswith(
        "Fatal Python error: app::interpreter: this program was built for CPython 3.11.7, "
        "but the libpython it loaded is 3.12.1: build it again with the Python it runs with\n"
    )


# ---- The Rust module ----

RUST_MODULE_PROBE = """
import app_rs
print(app_rs.add(40, 2), app_rs.greet("Rust " * 3), app_rs.add.__text_signature__)
for call, error in ((lambda: app_rs.add("2", 3), TypeError),
                    (lambda: app_rs.add(2**63 - 1, 1), OverflowError),
                    (lambda: app_rs.greet(7), TypeError)):
    try:
        call()
    except error as raised:
        print(type(raised).__name__)
"""


@pytest.mark.parametrize("place", minors("3.12", "3.14"), indirect=True)
def test_the_pymodule_converts_arguments_and_results_and_raises_python_errors(
    place: Place, builds: Builds, tmp_path: Path
) -> None:
    _, binary = builds.get(place, "app", {})
    ran = place.run([str(binary), "-c", RUST_MODULE_PROBE], cwd=tmp_path)
    assert (ran.returncode, ran.stderr) == (0, "")
    assert ran.stdout == (
        "42 Hello, Rust Rust Rust ! (a, b)\nTypeError\nOverflowError\nTypeError\n"
    )


# ---- Features ----


@pytest.mark.parametrize(
    ("features", "where", "says"),
    [
        ("global-allocator-jemalloc global-allocator-snmalloc", "src/lib.rs", "global-allocator"),
        ("allocator-mimalloc allocator-snmalloc", "src/interpreter.rs", "allocator"),
    ],
    ids=["rust", "python"],
)
@pytest.mark.parametrize("place", minors("3.12"), indirect=True)
def test_two_allocator_features_are_refused_by_compile_error_beside_the_code(
    place: Place, features: str, where: str, says: str, builds: Builds
) -> None:
    # Not from the build script (which rust-analyzer and `cargo clippy
    # --all-features` would stop at, far from the cause): from the code.
    project, _ = builds.get(place, "app", {})
    result = place.cargo(project, builds.target_dir(place), "check", "--features", features)
    assert result.returncode != 0
    error = f"error: two {says}-* features are enabled, but a program has one "
    assert error in result.stderr
    assert f"--> {where}:" in result.stderr.split(error, 1)[1].splitlines()[1]
    assert "failed to run custom build command" not in result.stderr


@pytest.mark.parametrize("place", minors("3.12"), indirect=True)
def test_build_mode_prebuilt_artifacts_wins_over_the_default_build_mode(
    place: Place, builds: Builds
) -> None:
    # Features stay additive: no --no-default-features needed.
    project, _ = builds.get(place, "app", {})
    result = place.cargo(
        project, builds.target_dir(place), "check", "--features", "build-mode-prebuilt-artifacts"
    )
    assert result.returncode != 0
    error = flat(result.stderr)
    assert "build-mode-prebuilt-artifacts links the Python of the artifacts" in error
    assert "but it is not set" in error


# ---- Without Rust's main ----

RUST_CODE_IN_MAIN = """        Ok(python) => {
            print!("from Rust, no newline");
            if std::env::var_os("PANIC").is_some() {
                panic!("a Rust panic");
            }
            python.run_main()
        }"""


@pytest.mark.parametrize("place", minors("3.12"), indirect=True)
def test_rust_code_in_main_has_its_stdout_flushed_and_a_panic_exits_with_101_as_rusts_main(
    place: Place, builds: Builds, tmp_path: Path
) -> None:
    project = render(tmp_path / "panicky", {"project_name": "panicky"})
    main = project / "src" / "main.rs"
    text = main.read_text()
    assert "        Ok(python) => python.run_main(),\n" in text
    main.write_text(text.replace("        Ok(python) => python.run_main(),", RUST_CODE_IN_MAIN))
    binary = place.built(project, builds.target_dir(place), "--locked")

    ran = place.run([str(binary), "-c", "print('from Python')"], cwd=tmp_path)
    assert (ran.returncode, ran.stdout, ran.stderr) == (
        0,
        "from Python\nfrom Rust, no newline",
        "",
    )
    panicked = place.run([str(binary), "-c", "pass"], cwd=tmp_path, env={"PANIC": "1"})
    assert (panicked.returncode, panicked.stdout) == (101, "from Rust, no newline")
    assert "panicked at src/main.rs:" in panicked.stderr
    assert "a Rust panic" in panicked.stderr


# ---- ._pth files (issue 20) ----

PTH_PROBE = (
    "import sys; print(sys.path, sys.prefix, sys.exec_prefix, sys.flags.isolated, "
    "sys.flags.no_site, sys.flags.safe_path, sys.flags.ignore_environment, "
    "'site' in sys.modules)"
)


def beside_a_pth(place: Place, executable: str, folder: Path, pth: str) -> str:
    """What PTH_PROBE prints when `executable` runs through a link in
    `folder` (as CPython's test_site makes it) with `pth` in NAME._pth
    beside the link, the folder written FOLDER."""
    folder.mkdir(parents=True)
    link = folder / Path(executable).name
    link.symlink_to(executable)
    (folder / f"{link.name}._pth").write_text(pth)
    ran = place.run([str(link), "-c", PTH_PROBE], cwd=folder, env={"PYTHONPATH": "/env/path"})
    assert ran.returncode == 0, ran.stderr
    return ran.stdout.replace(str(folder), "FOLDER")


@pytest.mark.parametrize("site", [True, False], ids=["import-site", "no-site"])
@pytest.mark.parametrize("place", minors("3.12", "3.14"), indirect=True)
def test_a_pth_file_beside_the_program_sets_sys_path_as_beside_python(
    place: Place, site: bool, builds: Builds, tmp_path: Path
) -> None:
    _, binary = builds.get(place, "app", {})
    where = "import sysconfig; print(sysconfig.get_path('stdlib'))"
    stdlib = place.run([place.python, "-c", where], cwd=tmp_path).stdout.strip()
    pth = f"# the standard library\n{stdlib}\n{stdlib}/lib-dynload\n.\n../lib\n"
    pth += "import site\n" if site else ""
    ours = beside_a_pth(place, str(binary), tmp_path / "ours", pth)
    theirs = beside_a_pth(place, place.python, tmp_path / "theirs", pth)
    assert ours.replace("ours", "X") == theirs.replace("theirs", "X")
    # The file's lines are sys.path, its folder the prefix; isolated mode,
    # and site only with `import site`.
    paths = f"['{stdlib}', '{stdlib}/lib-dynload', 'FOLDER', '"
    assert ours.startswith(paths), ours
    assert ours.endswith(f" FOLDER FOLDER 1 {int(not site)} True 1 {site}\n"), ours


def site_test_command(place: Place, builds: Builds) -> tuple[list[str], dict[str, str]]:
    """The arguments and environment that run CPython's test_site with
    `place`'s Python. Debian leaves the test suite out of its python3.X
    packages: for the sid root's, test_site.py comes from its
    libpython3.X-testsuite package, downloaded once."""
    if place.root is None:
        return ["-m", "test", "test_site", "-v"], {}
    folder = builds.target_root / f"test-site-{place.minor}"
    if not (folder / "test_site.py").is_file():
        debs = builds.target_root / "sid-debs"
        debs.mkdir(parents=True, exist_ok=True)
        package = f"libpython{place.minor}-testsuite"
        got = place.run(["apt-get", "download", package], cwd=debs)
        assert got.returncode == 0, got.stderr
        (deb,) = debs.glob(f"{package}_*.deb")
        extracted = debs / package
        unpacked = place.run(["dpkg-deb", "-x", str(deb), str(extracted)], cwd=debs)
        assert unpacked.returncode == 0, unpacked.stderr
        folder.mkdir(parents=True, exist_ok=True)
        test_site = extracted / "usr" / "lib" / f"python{place.minor}" / "test" / "test_site.py"
        shutil.copy(test_site, folder / "test_site.py")
    return ["-m", "unittest", "-v", "test_site"], {"PYTHONPATH": str(folder)}


@pytest.mark.parametrize("place", minors("3.12", "3.14"), indirect=True)
def test_cpythons_own_test_site_passes_with_the_program_as_sys_executable(
    place: Place, builds: Builds, tmp_path: Path
) -> None:
    _, binary = builds.get(place, "app", {})
    command, env = site_test_command(place, builds)
    # test_site makes the user site folder (~/.local/lib/python3.X/site-packages)
    # when it is missing, and leaves it: in a home of its own, not the real one,
    # where it would change sys.path for every later python.
    home = tmp_path / "home"
    home.mkdir()
    env = {**env, "HOME": str(home)}
    for executable in (place.python, str(binary)):
        ran = place.run([executable, *command], cwd=tmp_path, env=env)
        output = ran.stdout + ran.stderr
        assert ran.returncode == 0, f"{executable}:\n{output[-6000:]}"
        for test in ("test_underpth_basic", "test_underpth_file", "test_underpth_nosite_file"):
            assert re.search(rf"^{test} \(.*\) \.\.\. ok$", output, re.M), (executable, test)


# ---- Other targets ----


@pytest.mark.parametrize("target", ["x86_64-unknown-linux-musl", "x86_64-pc-windows-gnu"])
@pytest.mark.parametrize("place", minors("3.12"), indirect=True)
def test_the_generated_code_compiles_cleanly_for_musl_and_windows(
    place: Place, target: str, builds: Builds
) -> None:
    # No musl or Windows CPython can be had here to link and run against, so
    # this checks what can be: the cfg(windows) code and the musl build (whose
    # command line comes from C's argv) compile, with clippy's lints.
    require("rustup")
    added = subprocess.run(["rustup", "target", "add", target], capture_output=True, text=True,
                           timeout=600, check=False)  # fmt: skip
    if added.returncode != 0:
        missing(f"rustup cannot add the {target} target: {added.stderr.strip()}")
    project, _ = builds.get(place, "app", {})
    checked = cargo(
        project, builds.target_root / f"pyo3-check-{target}", "clippy", "--locked",
        "--all-targets", "--target", target, "--", "-D", "warnings",
        env={"PYO3_CROSS_PYTHON_VERSION": place.minor},
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr[-4000:]
