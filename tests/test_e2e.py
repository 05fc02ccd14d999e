"""End-to-end, pyembed engine: Copier renders this repository, cargo builds the
project against crates.io, and the built program runs Python. (The pyo3
engine's are in test_e2e_pyo3.py.)

All builds share one CARGO_TARGET_DIR per linked interpreter (pyo3 rebuilds
when the interpreter changes, so mixing them in one folder would thrash).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hooks import interpreter

from . import relocation
from .conftest import (
    Place,
    built,
    cargo,
    copy_cli,
    flat,
    missing,
    place_of,
    pyenv_python,
    render,
    require,
    run,
)
from .parity import (
    CASES,
    OWNS,
    PYMALLOC_STATS,
    PYTHON_USES_IT,
    repl_side_by_side,
    run_side_by_side,
)

pytestmark = pytest.mark.e2e

IMPORTS = "import ssl, sqlite3, json, decimal, ctypes, sys; print(sys.version)"


def linked_python() -> interpreter.Interpreter:
    """The interpreter pyo3 will pick in this environment."""
    return interpreter.probe(interpreter.find())


def test_default_project_builds_locked_and_runs_python_with_c_extensions(
    tmp_path: Path, cargo_target_root: Path
) -> None:
    project = tmp_path / "demo"
    result = copy_cli(project, "project_name=demo", "engine=pyembed")
    assert result.returncode == 0, result.stderr
    lock = (project / "Cargo.lock").read_text()
    binary = built(project, cargo_target_root / "default", "--locked")
    # The shipped lock file is exactly what Cargo writes: the build left it alone.
    assert (project / "Cargo.lock").read_text() == lock

    python = linked_python()
    ran = run(binary, "-c", IMPORTS, cwd=tmp_path / "somewhere" / "else")
    assert ran.stdout.split()[0] == ".".join(map(str, python.version))
    # The standard library and site come from the linked installation.
    where = run(
        binary, "-c", "import os, sys; print(sys.prefix); print(os.__file__)", cwd=Path("/")
    )
    prefix, os_module = where.stdout.split()
    assert prefix == python.base_prefix
    assert os_module.startswith(python.base_prefix)


def test_generated_code_is_clean_for_rustfmt_and_clippy(
    tmp_path: Path, cargo_target_root: Path
) -> None:
    project = render(tmp_path / "demo", {"engine": "pyembed"})
    fmt = cargo(project, cargo_target_root / "default", "fmt", "--check")
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    # cargo fmt only reaches modules; the included configuration is checked directly.
    included = subprocess.run(
        ["rustfmt", "--check", "--edition", "2021", "src/python_config.rs"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert included.returncode == 0, included.stdout
    for features in ([], ["--features", "global-allocator-mimalloc allocator-mimalloc"]):
        clippy = cargo(
            project, cargo_target_root / "default", "clippy", "--all-targets", *features,
            "--", "-D", "warnings",
        )  # fmt: skip
        assert clippy.returncode == 0, clippy.stderr[-4000:]


# What Rust allocated through the allocator so far, in the allocator's own
# account, printed from Python (build.rs exports the program's symbols, so
# ctypes finds the allocator's functions): jemalloc's bytes allocated by this
# thread; the size of mimalloc's live blocks; the resident memory of
# snmalloc's heap (the mapping holding a block it returns: snmalloc 0.2 has
# no statistics, and aborts when asked about memory it does not own).
RUST_ALLOCATED = {
    "jemalloc": """
import ctypes
ctl = ctypes.CDLL(None)._rjem_mallctl
ctl.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t),
                ctypes.c_void_p, ctypes.c_size_t]
value, size = ctypes.c_uint64(), ctypes.c_size_t(8)
assert ctl(b"thread.allocated", ctypes.byref(value), ctypes.byref(size), None, 0) == 0
print(value.value)
""",
    "mimalloc": """
import ctypes
lib = ctypes.CDLL(None)
VISIT = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                         ctypes.c_size_t, ctypes.c_void_p)
lib.mi_heap_main.restype = ctypes.c_void_p
lib.mi_heap_visit_blocks.argtypes = [ctypes.c_void_p, ctypes.c_bool, VISIT, ctypes.c_void_p]
live = []
visitor = VISIT(lambda heap, area, block, size, arg: (block and live.append(size)) or True)
assert lib.mi_heap_visit_blocks(lib.mi_heap_main(), True, visitor, None)
print(sum(live))
""",
    "snmalloc": """
import ctypes
lib = ctypes.CDLL(None)
lib.sn_malloc.argtypes, lib.sn_malloc.restype = [ctypes.c_size_t], ctypes.c_void_p
block = lib.sn_malloc(1)
mapping = None
for line in open("/proc/self/smaps"):
    field = line.split()
    if "-" in field[0] and not field[0].endswith(":"):
        start, end = (int(address, 16) for address in field[0].split("-"))
        mapping = start <= block < end
    elif mapping and field[0] == "Rss:":
        print(int(field[1]) * 1024)
""",
}
ARGUMENT = "A" * 100_000  # Linux takes at most 128 KiB in one argument


@pytest.mark.parametrize("allocator", ["jemalloc", "mimalloc", "snmalloc"])
def test_each_rust_global_allocator_serves_the_programs_rust_allocations(
    allocator: str, tmp_path: Path, cargo_target_root: Path
) -> None:
    name = f"global-{allocator}"
    project = render(
        tmp_path / name, {"engine": "pyembed", "project_name": name, "global_allocator": allocator}
    )
    binary = built(project, cargo_target_root / "default", "--locked")
    # A known Rust allocation whose size the test chooses: pyembed keeps a
    # Rust copy of the command line (its configuration's argv) while Python
    # runs. Python allocates through its own allocator, never this one.
    code = RUST_ALLOCATED[allocator]
    small = int(run(binary, "-c", code, cwd=tmp_path).stdout)
    large = int(run(binary, "-c", code, *[ARGUMENT] * 8, cwd=tmp_path).stdout)
    assert large - small >= 8 * len(ARGUMENT), (small, large)


@pytest.mark.parametrize("allocator", ["jemalloc", "mimalloc", "snmalloc"])
def test_each_python_allocator_builds_and_runs_with_python_using_it(
    allocator: str, tmp_path: Path, cargo_target_root: Path
) -> None:
    name = f"python-{allocator}"
    project = render(
        tmp_path / name, {"engine": "pyembed", "project_name": name, "python_allocator": allocator}
    )
    binary = built(project, cargo_target_root / "default", "--locked")
    # Allocation-heavy Python code through the custom allocator.
    code = "x = [str(i) * 10 for i in range(200000)]; import json; print(len(json.dumps(x)))"
    ran = run(binary, "-c", code, cwd=tmp_path)
    assert ran.stdout.strip() == str(len(json.dumps([str(i) * 10 for i in range(200000)])))
    # The allocator itself owns Python's objects (every domain, not only raw),
    # and pymalloc is gone.
    owned = run(
        binary, "-c", PYTHON_USES_IT.format(owns=OWNS[allocator], counter_check=False), cwd=tmp_path
    )
    assert owned.stdout == "owned\n"
    stats = run(binary, "-c", "import sys; sys._debugmallocstats()", cwd=tmp_path)
    assert PYMALLOC_STATS not in stats.stderr


def test_run_module_answer_runs_the_module_with_the_programs_arguments(
    tmp_path: Path, cargo_target_root: Path
) -> None:
    project = render(
        tmp_path / "jsontool",
        {
            "engine": "pyembed",
            "project_name": "jsontool",
            "run_mode": "module",
            "run_module": "json.tool",
        },
    )
    binary = built(project, cargo_target_root / "default", "--locked")
    ran = run(binary, "--sort-keys", "--compact", cwd=tmp_path, stdin='{"b": 1, "a": 2}')
    assert ran.stdout.strip() == '{"a":2,"b":1}'


def test_run_code_answer_runs_exactly_that_code_with_the_programs_arguments(
    tmp_path: Path, cargo_target_root: Path
) -> None:
    code = 'import sys\nprint("args:", sys.argv[1:], "quote\\"s", \'tab\\there\')'
    project = render(
        tmp_path / "coder",
        {"engine": "pyembed", "project_name": "coder", "run_mode": "code", "run_code": code},
    )
    binary = built(project, cargo_target_root / "default", "--locked")
    ran = run(binary, "one", "two words", cwd=tmp_path)
    assert ran.stdout == "args: ['one', 'two words'] quote\"s tab\there\n"


def test_run_build_makes_a_relocatable_program_offline_and_reruns_without_copier(
    tmp_path: Path, cargo_target_root: Path
) -> None:
    project = tmp_path / "built"
    target_dir = cargo_target_root / "default"
    env = {"CARGO_TARGET_DIR": str(target_dir)}
    result = copy_cli(project, "project_name=built", "engine=pyembed", "run_build=true", env=env)
    assert result.returncode == 0, result.stderr
    out = flat(result.stdout)
    assert "Step 1 of 2" in out
    assert "PyOxidizer failed, so local artifacts are used instead." in out  # offline
    assert "Features: build-mode-prebuilt-artifacts" in out
    assert f"PYO3_CONFIG_FILE={project / 'target' / 'out' / 'pyo3-build-config-file.txt'}" in out
    folder = project / "dist" / "built"
    assert f"Built {folder / 'built'}" in out
    assert (project / "target" / "out" / "default_python_config.rs").is_file()
    assert "run_build" not in (project / ".copier-answers.yml").read_text()

    # Moved elsewhere, with the Python it was built from and the build folders hidden.
    program = relocation.moved(folder, tmp_path / "elsewhere" / "built")
    hidden = [Path(linked_python().base_prefix), project, target_dir]
    relocation.check_moved(
        lambda args, stdin: relocation.run_hidden(program, args, hidden, tmp_path / "e", stdin),
        program,
    )
    assert relocation.absolute_paths(program.parent) == {}
    assert relocation.machine_paths(folder, project, Path(linked_python().base_prefix)) == {}

    # The same build again, from inside the project, without Copier (the
    # folder was moved away: the build makes it again).
    again = subprocess.run(
        [sys.executable, "tools/hooks", "build"],
        cwd=project,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"Built {folder / 'built'}" in flat(again.stdout)
    # The artifacts did not change, so nothing is recompiled.
    assert "Compiling" not in again.stderr
    code = "import json, sqlite3; print('ok')"
    assert run(folder / "built", "-c", code, cwd=Path("/")).stdout == "ok\n"


def test_portable_carries_the_system_libraries_and_runs_in_a_minimal_debian_root(
    tmp_path: Path, cargo_target_root: Path, request: pytest.FixtureRequest
) -> None:
    root = request.getfixturevalue("minimal_root")
    project = render(tmp_path / "built", {"engine": "pyembed", "project_name": "built"})
    folder = relocation.build_portable(
        project, {"CARGO_TARGET_DIR": str(cargo_target_root / "default")}
    )
    relocation.check_in_minimal_root(root, folder, tmp_path / "bundles")


@pytest.mark.parametrize("minor", ["3.8", "3.9", "3.10", "3.11"])
def test_default_project_builds_and_runs_with_every_supported_python(
    minor: str, tmp_path: Path, cargo_target_root: Path
) -> None:
    python = pyenv_python(minor)
    if python is None:
        missing(f"Python {minor} is not installed under ~/.pyenv/versions on this machine")
    name = f"py{minor.replace('.', '')}"
    project = render(tmp_path / name, {"engine": "pyembed", "project_name": name})
    env = {"PYO3_PYTHON": str(python)}
    binary = built(project, cargo_target_root / f"python{minor}", "--locked", env=env)
    ran = run(binary, "-c", IMPORTS, cwd=tmp_path)
    assert ran.stdout.startswith(f"{minor}.")


def test_build_script_refuses_a_python_newer_than_pyo3_supports(
    tmp_path: Path, cargo_target_root: Path
) -> None:
    python = pyenv_python("3.12")
    if python is None:
        missing("Python 3.12 is not installed under ~/.pyenv/versions on this machine")
    project = render(tmp_path / "tooneww", {"engine": "pyembed", "project_name": "toonew"})
    result = cargo(
        project, cargo_target_root / "python3.12", "build", env={"PYO3_PYTHON": str(python)}
    )
    assert result.returncode != 0
    error = flat(result.stderr)
    assert "pyo3 found CPython 3.12" in error
    assert "embeds CPython 3.8 to 3.11 only" in error
    assert "Set PYO3_PYTHON" in error
    assert "`copier update --trust --data engine=pyo3`" in error  # the engine that embeds it


def test_prebuilt_mode_without_artifacts_explains_how_to_make_them(
    tmp_path: Path, cargo_target_root: Path
) -> None:
    project = render(tmp_path / "noart", {"engine": "pyembed", "project_name": "noart"})
    result = cargo(
        project, cargo_target_root / "default", "build", "--no-default-features",
        "--features", "build-mode-prebuilt-artifacts",
        env={"PYOXIDIZER_ARTIFACT_DIR": str(tmp_path / "empty")},
    )  # fmt: skip
    assert result.returncode != 0
    error = flat(result.stderr)
    assert "found no default_python_config.rs" in error
    assert "python3 tools/hooks build" in error


def test_two_build_modes_at_once_are_refused_with_the_fix(
    tmp_path: Path, cargo_target_root: Path
) -> None:
    project = render(tmp_path / "twomodes", {"engine": "pyembed", "project_name": "twomodes"})
    result = cargo(
        project, cargo_target_root / "default", "build",
        "--features", "build-mode-prebuilt-artifacts",
    )  # fmt: skip
    assert result.returncode != 0
    assert "Add --no-default-features" in flat(result.stderr)


def test_pyoxidizer_exe_mode_offline_fails_with_a_clear_message(
    tmp_path: Path, cargo_target_root: Path
) -> None:
    require("pyoxidizer")
    project = render(
        tmp_path / "pyox",
        {"engine": "pyembed", "project_name": "pyox", "build_mode": "pyoxidizer-exe"},
    )
    result = cargo(project, cargo_target_root / "default", "build")
    assert result.returncode != 0
    error = flat(result.stderr)
    assert "run-build-script build.rs` failed" in error
    assert "python3 tools/hooks build" in error


@pytest.mark.parametrize(
    ("features", "says"),
    [
        ("global-allocator-jemalloc global-allocator-mimalloc", "one Rust global allocator"),
        ("allocator-mimalloc allocator-snmalloc", "Enable at most one allocator-* feature"),
    ],
    ids=["two-global-allocators", "two-python-allocators-in-standalone-mode"],
)
def test_conflicting_allocator_features_are_refused_with_the_fix(
    features: str, says: str, tmp_path: Path, cargo_target_root: Path
) -> None:
    project = render(tmp_path / "twoalloc", {"engine": "pyembed", "project_name": "twoalloc"})
    result = cargo(project, cargo_target_root / "default", "build", "--features", features)
    assert result.returncode != 0
    assert says in flat(result.stderr)


# ---- Parity with python (the cases of tests/parity.py) ----


@pytest.fixture(scope="module")
def pyembed_builds(tmp_path_factory: pytest.TempPathFactory, cargo_target_root: Path) -> dict:
    """(place, binary) of a default pyembed project per linked Python, built once."""
    made: dict[str, tuple[Place, Path]] = {}

    def get(
        minor: str, request: pytest.FixtureRequest, *cargo_args: str, **answers: str
    ) -> tuple[Place, Path]:
        key = f"{minor}-{answers.get('run_mode', 'repl')}{''.join(cargo_args)}"
        if key not in made:
            place = place_of(minor, request)
            name = f"parity-{answers.get('run_mode', 'repl')}"
            project = render(
                tmp_path_factory.mktemp(key) / name,
                {"engine": "pyembed", "project_name": name, **answers},
            )
            target_dir = cargo_target_root / f"python{minor}"
            made[key] = (place, place.built(project, target_dir, *cargo_args))
        return made[key]

    return get


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("minor", ["3.8", "3.11"])
def test_the_program_behaves_like_the_python_it_links(
    minor: str, case: str, pyembed_builds, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    place, binary = pyembed_builds(minor, request)
    ours, theirs = run_side_by_side(place, binary, case, tmp_path)
    assert ours == theirs


@pytest.mark.parametrize("minor", ["3.8", "3.11"])
def test_the_interactive_prompt_on_a_terminal_behaves_like_pythons(
    minor: str, pyembed_builds, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    place, binary = pyembed_builds(minor, request)
    ours, theirs = repl_side_by_side(place, binary, tmp_path)
    assert ours == theirs
    banner, probe, status = ours
    assert banner.startswith(f"Python {minor}.")
    assert probe == "42 0 [''] '' ['readline']"
    assert status == 5


ARGV_AND_PATH0 = "import json, sys; print(json.dumps([sys.argv, sys.path[0]]))"


@pytest.mark.parametrize(
    ("answers", "cargo_args", "python_args"),
    [
        # Without isolation (the python-environment feature): `python -m`,
        # which finds probe.py in the current folder.
        (
            {"run_mode": "module", "run_module": "probe"},
            ["--features", "python-environment"],
            ["-m", "probe"],
        ),
        # Isolated, the default: `python -I -c`; no app folder (python/ would
        # be on sys.path in this development build).
        (
            {"run_mode": "code", "run_code": ARGV_AND_PATH0, "python_package": ""},
            [],
            ["-I", "-c", ARGV_AND_PATH0],
        ),
    ],
    ids=["module-python-environment", "code-isolated"],
)
@pytest.mark.parametrize("minor", ["3.8", "3.11"])
def test_module_and_code_run_modes_give_sys_argv_and_path_as_python_does(
    minor: str,
    answers: dict,
    cargo_args: list[str],
    python_args: list[str],
    pyembed_builds,
    request,
    tmp_path: Path,
) -> None:
    place, binary = pyembed_builds(minor, request, *cargo_args, **answers)
    (tmp_path / "probe.py").write_text(ARGV_AND_PATH0 + "\n")
    ours = place.run([str(binary), "a", "-c", "b"], cwd=tmp_path)
    theirs = place.run([place.python, *python_args, "a", "-c", "b"], cwd=tmp_path)
    assert (ours.returncode, ours.stdout, ours.stderr) == (0, theirs.stdout, "")
    assert json.loads(ours.stdout)[0][1:] == ["a", "-c", "b"]
