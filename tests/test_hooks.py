"""The hooks' build steps without cargo: PyOxidizer's invocation and its
fallback (pyembed engine), the artifacts of each engine, the features given
to cargo, the messages."""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest
from plumbum import local

from hooks import artifacts, cargo, cli, packages, runtime
from hooks.interpreter import Candidate, probe
from hooks.project import Project
from hooks.report import HookError, paragraph

from .conftest import flat, missing, pyenv_python, render

TRIPLE = "x86_64-unknown-linux-gnu"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {
        engine: render(tmp_path_factory.mktemp(engine) / "demo", {"engine": engine})
        for engine in ("pyembed", "pyo3")
    }


def private_copy(rendered: Path, tmp_path: Path) -> Project:
    """A private copy, since the steps write into target/."""
    copy = tmp_path / "demo"
    shutil.copytree(rendered, copy)
    return Project.at(copy)


@pytest.fixture
def project(rendered: dict[str, Path], tmp_path: Path) -> Project:
    """A pyembed project."""
    return private_copy(rendered["pyembed"], tmp_path)


@pytest.fixture
def pyo3_project(rendered: dict[str, Path], tmp_path: Path) -> Project:
    return private_copy(rendered["pyo3"], tmp_path)


@pytest.fixture(autouse=True)
def quick_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about the steps, not the runtime, which copies and
    compiles a whole standard library (the end-to-end tests check it): a
    stand-in makes its lib/ folder only."""

    def make(directory: Path, python) -> runtime.Runtime:
        lib = directory / "lib"
        lib.mkdir(parents=True, exist_ok=True)
        return runtime.Runtime(lib, "python3.x")

    monkeypatch.setattr(runtime, "make", make)
    # Nor about the app and its packages (test_packages.py and the end-to-end
    # tests install them with pip).
    monkeypatch.setattr(packages, "install", lambda *args, **kwargs: False)


@pytest.fixture(scope="module")
def python():
    return probe(Candidate(sys.executable, "test"))


def stand_in(tmp_path: Path, body: str) -> Path:
    """A recording pyoxidizer: writes its arguments, folder and environment."""
    record = tmp_path / "record.json"
    path = tmp_path / "pyoxidizer"
    path.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"json.dump({{'argv': sys.argv[1:], 'cwd': os.getcwd(), 'env': dict(os.environ)}},"
        f" open({str(record)!r}, 'w'))\n" + body
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_pyoxidizer_gets_the_seeds_arguments_and_simulated_cargo_environment(
    project: Project, python, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    exe = stand_in(tmp_path, "print('error: could not download the Python distribution')\n"
                   "sys.exit(1)\n")  # fmt: skip
    monkeypatch.setenv("PYOXIDIZER_EXE", str(exe))
    made = artifacts.produce(project, python, TRIPLE, "debug")
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["argv"] == ["--system-rust", "run-build-script", "build.rs"]
    assert record["cwd"] == str(project.root)
    env = record["env"]
    assert env["CARGO_MANIFEST_DIR"] == str(project.root)
    assert env["TARGET"] == TRIPLE
    assert env["PROFILE"] == "debug"
    assert env["OUT_DIR"] == str(project.root / "target" / "out")
    assert Path(env["OUT_DIR"]).is_absolute()
    # It failed, so the local stand-in took over, and the failure fits on one line.
    assert made.provider == "local"
    out = capsys.readouterr().out
    assert "PyOxidizer failed, so local artifacts are used instead. It said:" in flat(out)
    assert "\n    error: could not download the Python distribution\n" in out
    assert "Using local artifacts: the runtime of" in flat(out)


def test_real_pyoxidizer_offline_fails_in_one_line_and_the_build_falls_back(
    project: Project, python, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    exe = shutil.which("pyoxidizer")
    if exe is None:
        pytest.fail("pyoxidizer 0.24.0 is a test dependency (pyproject's test group)")
    monkeypatch.setenv("PYOXIDIZER_EXE", exe)
    made = artifacts.produce(project, python, TRIPLE, "debug")
    assert made.provider == "local"
    out = capsys.readouterr().out
    said = out.split("It said:\n", 1)[1].splitlines()[0]  # the line after the note
    assert said.startswith("    error")
    assert "python-build-standalone" in said  # the distribution it tried to download


def test_pyoxidizer_that_hangs_is_stopped_at_the_time_limit(
    project: Project, python, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("PYOXIDIZER_EXE", str(stand_in(tmp_path, "import time; time.sleep(60)\n")))
    made = artifacts.produce(project, python, TRIPLE, "debug", timeout=1)
    assert made.provider == "local"
    assert "did not finish within 1 s and was stopped" in flat(capsys.readouterr().out)


def test_pyoxidizer_only_mode_reports_the_failure_instead_of_falling_back(
    project: Project, python, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYOXIDIZER_EXE", str(stand_in(tmp_path, "sys.exit(2)\n")))
    with pytest.raises(HookError, match="failed \\(exit status 2\\)"):
        artifacts.produce(project, python, TRIPLE, "debug", mode="pyoxidizer")


def test_pyoxidizer_that_succeeds_provides_the_artifacts(
    project: Project, python, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = (
        "out = os.environ['OUT_DIR']\n"
        "open(os.path.join(out, 'default_python_config.rs'), 'w').write('// pyoxidizer')\n"
        "open(os.path.join(out, 'pyo3-build-config-file.txt'), 'w').write('version=3.10')\n"
    )
    monkeypatch.setenv("PYOXIDIZER_EXE", str(stand_in(tmp_path, body)))
    made = artifacts.produce(project, python, TRIPLE, "release")
    assert made.provider == "pyoxidizer"
    assert made.pyo3_config.read_text() == "version=3.10"


# PyOxidizer 0.24's `run-build-script` exits at once, successfully, when
# OUT_DIR has a default_python_config.rs newer than pyoxidizer.bzl; offline it
# fails otherwise.
UP_TO_DATE_THEN_OFFLINE = (
    "if os.path.exists(os.path.join(os.environ['OUT_DIR'], 'default_python_config.rs')):\n"
    "    sys.exit(0)\n"
    "print('error: could not download the Python distribution')\n"
    "sys.exit(1)\n"
)


def test_pyoxidizer_never_passes_off_earlier_local_artifacts_as_its_own(
    project: Project, python, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYOXIDIZER_EXE", str(stand_in(tmp_path, UP_TO_DATE_THEN_OFFLINE)))
    local_made = artifacts.produce(project, python, TRIPLE, "debug")
    assert local_made.provider == "local"
    config_rs = local_made.directory / artifacts.CONFIG_RS
    before = {p.name: p.stat().st_mtime_ns for p in local_made.directory.iterdir()}
    # PyOxidizer only: it must fail, not report the local artifacts as its own.
    with pytest.raises(HookError, match="failed \\(exit status 1\\)"):
        artifacts.produce(project, python, TRIPLE, "debug", mode="pyoxidizer")
    # It ran without them in its way, and they are back, untouched.
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["env"]["OUT_DIR"] == str(local_made.directory)
    assert config_rs.read_text().startswith(artifacts.LOCAL_MARK)
    assert {p.name: p.stat().st_mtime_ns for p in local_made.directory.iterdir()} == before
    assert not local_made.directory.with_name("out.local").exists()
    # And again with the fallback: local artifacts, said so, nothing rewritten.
    again = artifacts.produce(project, python, TRIPLE, "debug")
    assert again.provider == "local"
    assert {p.name: p.stat().st_mtime_ns for p in again.directory.iterdir()} == before


def test_local_artifacts_follow_a_changed_python_although_pyoxidizer_is_installed(
    project: Project, python, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other_path = pyenv_python("3.10")
    if other_path is None:
        missing("Python 3.10 is not installed under ~/.pyenv/versions on this machine")
    other = probe(Candidate(str(other_path), "test"))
    monkeypatch.setenv("PYOXIDIZER_EXE", str(stand_in(tmp_path, UP_TO_DATE_THEN_OFFLINE)))
    first = artifacts.produce(project, python, TRIPLE, "debug")
    second = artifacts.produce(project, other, TRIPLE, "debug")
    assert (first.provider, second.provider) == ("local", "local")
    assert second.pyo3_config.read_text() == other.pyo3_config(lib_dir=str(second.runtime_lib))
    assert other.describe in (second.directory / artifacts.CONFIG_RS).read_text()


def test_local_mode_never_runs_pyoxidizer(
    project: Project, python, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYOXIDIZER_EXE", str(stand_in(tmp_path, "")))
    made = artifacts.produce(project, python, TRIPLE, "debug", mode="local")
    assert made.provider == "local"
    assert not (tmp_path / "record.json").exists()


def test_local_artifacts_reuse_the_projects_interpreter_configuration(
    project: Project, python
) -> None:
    made = artifacts.write_local(project, python)
    config_rs = (made.directory / "default_python_config.rs").read_text()
    assert f'include!("{project.root / "src" / "python_config.rs"}");' in config_rs
    assert made.pyo3_config.read_text() == python.pyo3_config(lib_dir=str(made.runtime_lib))


def test_stale_artifacts_are_removed_before_a_new_step(project: Project, python) -> None:
    stale = project.artifact_dir / "packed-resources"
    stale.parent.mkdir(parents=True)
    stale.write_text("old")
    artifacts.produce(project, python, TRIPLE, "debug", mode="local")
    assert not stale.exists()


def test_no_usable_python_and_no_pyoxidizer_is_a_clear_error(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYOXIDIZER_EXE", "")
    with local.env(PATH="/nonexistent"), pytest.raises(HookError, match="need a usable Python"):
        artifacts.produce(project, None, TRIPLE, "debug")


def test_pyo3_artifacts_are_the_checked_pythons_runtime_and_its_pyo3_configuration(
    pyo3_project: Project, python, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYOXIDIZER_EXE", str(stand_in(tmp_path, "")))
    made = artifacts.produce(pyo3_project, python, TRIPLE, "debug")
    assert not (tmp_path / "record.json").exists()  # PyOxidizer is pyembed's
    assert sorted(p.name for p in made.directory.iterdir()) == [
        artifacts.PYO3_CONFIG,
        artifacts.RUNTIME,
    ]
    assert made.pyo3_config.read_text() == python.pyo3_config(lib_dir=str(made.runtime_lib))
    assert made.environment == {"PYO3_CONFIG_FILE": str(made.pyo3_config)}


def test_pyo3_artifacts_that_did_not_change_are_not_rewritten(
    pyo3_project: Project, python
) -> None:
    first = artifacts.produce(pyo3_project, python, TRIPLE, "debug")
    stamp = first.pyo3_config.stat().st_mtime_ns
    os.utime(first.pyo3_config, ns=(stamp - 10**9, stamp - 10**9))
    again = artifacts.produce(pyo3_project, python, TRIPLE, "debug")
    assert again.pyo3_config.stat().st_mtime_ns == stamp - 10**9


def test_pyoxidizer_artifacts_are_refused_for_a_pyo3_project(pyo3_project: Project, python) -> None:
    with pytest.raises(HookError, match="--artifacts pyoxidizer needs the pyembed engine"):
        artifacts.produce(pyo3_project, python, TRIPLE, "debug", mode="pyoxidizer")


@pytest.mark.parametrize(
    ("default", "windows", "expected"),
    [
        (["build-mode-standalone"], False, ["build-mode-prebuilt-artifacts"]),
        (
            ["build-mode-pyoxidizer-exe", "global-allocator-mimalloc", "allocator-jemalloc"],
            False,
            ["build-mode-prebuilt-artifacts", "global-allocator-mimalloc", "allocator-jemalloc"],
        ),
        (
            ["build-mode-standalone", "global-allocator-jemalloc", "allocator-jemalloc"],
            True,
            ["build-mode-prebuilt-artifacts"],
        ),
    ],
    ids=["defaults", "allocators-kept", "jemalloc-dropped-on-windows"],
)
def test_cargo_features_swap_the_build_mode_and_keep_the_allocators(
    default: list[str], windows: bool, expected: list[str]
) -> None:
    assert cargo.prebuilt_features(default, windows) == expected


def test_the_host_target_comes_from_rustc() -> None:
    target = cargo.target()
    assert target.triple.count("-") >= 2
    assert target.pointer_width in (32, 64)


def test_cargo_metadata_reports_the_default_features(project: Project) -> None:
    assert cargo.package(project)["features"]["default"] == ["build-mode-standalone"]


def test_the_first_error_line_is_what_gets_reported() -> None:
    output = "downloading x\nerror: dns failure\n  caused by: y\n"
    assert artifacts.first_error(output) == "error: dns failure"
    assert artifacts.first_error("just this\n") == "just this"


def test_paragraphs_never_break_a_path() -> None:
    path = "/a/very/long/path/" + "x" * 90 + "/python3.11"
    assert path in paragraph(f"The interpreter {path} is not usable.").splitlines()[1]


def test_missing_cargo_is_a_clear_error() -> None:
    # plumbum runs commands with its own copy of the environment.
    with local.env(PATH="/nonexistent"), pytest.raises(HookError, match="`rustc` is not on PATH"):
        cargo.target()


def test_a_failing_rust_tool_is_reported_with_its_exit_status_and_last_line() -> None:
    with pytest.raises(HookError) as raised:
        cargo._run(["rustc", "--no-such-option"])
    assert raised.value.problem.startswith("`rustc --no-such-option` failed (exit status 1): ")
    assert "no-such-option" in raised.value.problem.partition(": ")[2]  # rustc's own words


def test_a_standard_library_that_does_not_compile_is_reported_and_keeps_its_sources(
    tmp_path: Path, python
) -> None:
    stdlib = tmp_path / "python3.x"
    stdlib.mkdir()
    (stdlib / "fine.py").write_text("x = 1\n")
    (stdlib / "broken.py").write_text("def broken(:\n")
    with pytest.raises(HookError) as raised:
        runtime.compile_sourceless(python, stdlib)
    problem = raised.value.problem
    assert problem.startswith(
        f"Compiling the standard library with {python.describe} failed at {stdlib / 'broken.py'}: "
    )
    assert "SyntaxError" in problem
    assert sorted(path.name for path in stdlib.glob("*.py")) == ["broken.py", "fine.py"]


def test_the_command_line_outside_a_project_explains_itself(tmp_path: Path, capsys) -> None:
    assert cli.main(["check", "--project", str(tmp_path)]) == 1
    assert "has no Cargo.toml" in flat(capsys.readouterr().err)


def test_after_copy_never_fails_even_when_the_check_does(
    project: Project, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("PYO3_PYTHON", "/nonexistent/python3")
    assert cli.main(["after-copy", "--project", str(project.root)]) == 0
    out = capsys.readouterr()
    assert "does not exist" in flat(out.err)
    assert "The project's files are all in place" in flat(out.out)
    assert "python3 tools/hooks check" in out.out
