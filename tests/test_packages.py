"""The application and its requirements in the program's site-packages
(hooks/packages.py), and the paths the runtime's files record
(hooks/runtime.py), without cargo: what is refused, where relative paths
lead, when pip runs again, what is left out of the bundle."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from plumbum import local

from hooks import packages, runtime
from hooks.interpreter import Candidate, probe
from hooks.report import HookError

from .conftest import flat, missing, pyenv_python


@pytest.fixture(scope="module")
def python():
    return probe(Candidate(sys.executable, "test"))


def app(folder: Path, name: str = "hello") -> Path:
    """A small application package, as the project's python/ folder holds one."""
    (folder / name).mkdir(parents=True)
    (folder / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "0.1.0"\n'
        '[build-system]\nrequires = ["flit_core>=3.9,<4"]\nbuild-backend = "flit_core.buildapi"\n'
    )
    (folder / name / "__init__.py").write_text('"""Hello."""\nWORD = "hello"\n')
    return folder


class FakePip:
    """Stands in for pip: records each run and copies the local folders'
    packages into the target, as an install would."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.runs: list[tuple[Path | None, Path | None]] = []
        monkeypatch.setattr(packages, "run_pip", self.run)
        monkeypatch.setattr(runtime, "compile_tree", lambda *args, **kwargs: None)

    def run(self, python, site_packages: Path, app: Path | None, requirements: Path | None):
        self.runs.append((app, requirements))
        site_packages.mkdir(parents=True)
        if app is not None:
            for package in app.iterdir():
                if package.is_dir():
                    (site_packages / package.name).mkdir()
                    for file in package.glob("*.py"):
                        (site_packages / package.name / file.name).write_bytes(file.read_bytes())


def install(tmp_path: Path, python, app_folder: Path | None, requirements: Path | None) -> bool:
    return packages.install(
        tmp_path / "site-packages",
        python,
        app_folder,
        requirements,
        recorded_as="lib/python3.x/site-packages",
        stamp=tmp_path / packages.STAMP,
    )


# ---- What a requirements file may say ----


@pytest.mark.parametrize("line", ["-e ./hello", "--editable=./hello", "--editable ./hello"])
def test_an_editable_requirement_is_refused_naming_its_file_line_and_the_fix(
    tmp_path: Path, line: str
) -> None:
    app(tmp_path / "hello")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"six\n{line}\n")
    with pytest.raises(HookError) as raised:
        packages.read_requirements(requirements)
    assert raised.value.problem.startswith(
        f"{requirements}:2: `{line}` is editable ({tmp_path / 'hello'}), and the program "
        "cannot carry an editable install"
    )
    assert raised.value.fix.startswith("Remove the -e (--editable)")


def test_an_editable_line_in_a_nested_requirements_file_is_refused_too(tmp_path: Path) -> None:
    app(tmp_path / "sub" / "hello")
    (tmp_path / "requirements.txt").write_text("-r sub/more.txt\n")
    (tmp_path / "sub" / "more.txt").write_text("# the app\n-e ./sub/hello\n")
    with pytest.raises(HookError) as raised:
        packages.read_requirements(tmp_path / "requirements.txt")
    assert raised.value.problem.startswith(f"{tmp_path / 'sub' / 'more.txt'}:2: `-e ./sub/hello`")


def test_relative_paths_are_read_from_the_requirements_files_folder_not_the_current_one(
    tmp_path: Path,
) -> None:
    app(tmp_path / "deps" / "hello")
    requirements = tmp_path / "deps" / "requirements.txt"
    requirements.write_text("./hello\nfile:../deps/hello#egg=hello\nsix==1.16.0\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with local.cwd(elsewhere):
        sources = packages.read_requirements(Path("..") / "deps" / "requirements.txt")
    assert sources.requirements == [requirements]
    assert sources.local == [tmp_path / "deps" / "hello"] * 2


def test_a_local_path_that_does_not_exist_is_named_as_it_was_resolved(tmp_path: Path) -> None:
    (tmp_path / "deps").mkdir()
    requirements = tmp_path / "deps" / "requirements.txt"
    requirements.write_text("six\n../app\n")
    with pytest.raises(HookError) as raised:
        packages.read_requirements(requirements)
    assert raised.value.problem == (
        f"{requirements}:2: `../app` names {tmp_path / 'app'}, which does not exist."
    )
    assert f"Relative paths are read from the requirements file's folder ({tmp_path / 'deps'})" in (
        raised.value.fix
    )


def test_a_line_pip_cannot_read_is_refused_with_its_place(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six\nnot a requirement ((\n")
    with pytest.raises(HookError) as raised:
        packages.read_requirements(requirements)
    assert raised.value.problem.startswith(f"{requirements}:2: `not a requirement ((`")


# ---- When pip runs ----


def test_every_change_to_the_app_or_a_local_requirement_installs_again_and_no_change_nothing(
    tmp_path: Path, python, monkeypatch: pytest.MonkeyPatch
) -> None:
    pip = FakePip(monkeypatch)
    project = app(tmp_path / "python")
    local_dep = app(tmp_path / "deps" / "other", "other")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("-r deps/more.txt\n")
    (tmp_path / "deps" / "more.txt").write_text("./deps/other\n")
    out = tmp_path / "out"
    out.mkdir()

    assert install(out, python, project, requirements)
    assert not install(out, python, project, requirements)  # nothing changed
    # Touching a file, or what building writes into the folder, changes nothing.
    (project / "hello" / "__init__.py").touch()
    (project / "build" / "lib").mkdir(parents=True)
    (project / "hello.egg-info").mkdir()
    (project / "hello" / "__pycache__").mkdir()
    (project / "hello" / "__pycache__" / "x.pyc").write_bytes(b"x")
    assert not install(out, python, project, requirements)

    (project / "hello" / "__init__.py").write_text('WORD = "changed"\n')
    assert install(out, python, project, requirements)
    assert (out / "site-packages" / "hello" / "__init__.py").read_text() == 'WORD = "changed"\n'
    (project / "hello" / "new.py").write_text("")
    assert install(out, python, project, requirements)
    (local_dep / "other" / "__init__.py").write_text("changed = True\n")
    assert install(out, python, project, requirements)
    (tmp_path / "deps" / "more.txt").write_text("./deps/other\nsix\n")  # a nested file
    assert install(out, python, project, requirements)
    assert not install(out, python, project, requirements)
    assert len(pip.runs) == 5
    # No app and no requirements: an empty site-packages, and no stamp.
    assert not install(out, python, None, None)
    assert not (out / "site-packages").exists()
    assert not (out / packages.STAMP).exists()


def test_a_requirements_file_given_left_out_or_swapped_installs_again(
    tmp_path: Path, python, monkeypatch: pytest.MonkeyPatch
) -> None:
    pip = FakePip(monkeypatch)
    project = app(tmp_path / "python")
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text("six\n")
    second.write_text("six\n")  # the same text, another file
    out = tmp_path / "out"
    out.mkdir()

    assert install(out, python, project, None)
    # Before, the stamp held only the sources: a file given now was taken
    # for installed (and one left out stayed in the program).
    assert install(out, python, project, first)
    assert not install(out, python, project, first)
    assert install(out, python, project, second)
    assert install(out, python, project, None)
    assert not install(out, python, project, None)
    assert pip.runs == [(project, None), (project, first), (project, second), (project, None)]


def test_an_install_pip_cannot_make_is_reported_with_pips_last_line_and_retried_next_time(
    tmp_path: Path, python
) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("no-such-distribution-anywhere==0.0.1\n")
    # No index: pip fails at once, offline, the way a missing package fails.
    with local.env(PIP_NO_INDEX="1"), pytest.raises(HookError) as raised:
        install(tmp_path, python, None, requirements)
    problem = raised.value.problem
    assert problem.startswith(f"pip could not install {requirements} with {python.describe}: ")
    assert "no-such-distribution-anywhere" in problem.partition(": ")[2]  # pip's own words
    assert "then run the build again" in raised.value.fix
    assert not (tmp_path / packages.STAMP).exists()  # so the next build runs pip again


# ---- What the bundle carries ----


def test_scripts_and_the_local_folders_url_are_left_out_of_site_packages(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    (site / "bin").mkdir(parents=True)
    (site / "bin" / "hello").write_text(f"#!{sys.executable}\n")
    for name, url in (("hello-0.1.0", f"file://{tmp_path}/python"), ("six-1.16.0", "https://x")):
        info = site / f"{name}.dist-info"
        info.mkdir()
        (info / "direct_url.json").write_text(json.dumps({"url": url, "dir_info": {}}))
        (info / "RECORD").write_text(
            f"{name}.dist-info/METADATA,sha256=x,1\n{name}.dist-info/direct_url.json,,\n"
        )
    packages.clean(site)
    assert not (site / "bin").exists()
    assert not (site / "hello-0.1.0.dist-info" / "direct_url.json").exists()
    assert (site / "hello-0.1.0.dist-info" / "RECORD").read_text() == (
        "hello-0.1.0.dist-info/METADATA,sha256=x,1\n"
    )
    assert (site / "six-1.16.0.dist-info" / "direct_url.json").exists()  # names no folder here


def test_compiled_modules_record_their_path_inside_the_bundle(tmp_path: Path, python) -> None:
    stdlib = tmp_path / "lib" / "python3.x"
    stdlib.mkdir(parents=True)
    (stdlib / "fails.py").write_text("def go():\n    raise ValueError('here')\n")
    runtime.compile_sourceless(python, stdlib)
    assert not (stdlib / "fails.py").exists()
    assert str(tmp_path).encode() not in (stdlib / "fails.pyc").read_bytes()
    ran = subprocess.run(
        [sys.executable, "-c", "import fails; fails.go()"],
        cwd=tmp_path, env={"PYTHONPATH": str(stdlib)}, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert 'File "lib/python3.x/fails.py", line 2, in go' in ran.stderr


@pytest.mark.parametrize("minor", ["3.9", "3.12"])
def test_sysconfigdata_names_no_build_prefix_and_gives_the_same_values_from_its_own_prefix(
    tmp_path: Path, minor: str
) -> None:
    interpreter = pyenv_python(minor)
    if interpreter is None:
        missing(f"no CPython {minor} under ~/.pyenv")
    found = probe(Candidate(str(interpreter), "test"))
    (original,) = Path(found.stdlib).glob("_sysconfigdata_*.py")
    copy = tmp_path / original.name
    copy.write_bytes(original.read_bytes())
    runtime.relocate_sysconfigdata(tmp_path, found.base_prefix)
    assert found.base_prefix not in copy.read_text()
    compare = (
        "import importlib.util as u, sys\n"
        "def load(path):\n"
        "    spec = u.spec_from_file_location('m', path); m = u.module_from_spec(spec)\n"
        "    spec.loader.exec_module(m); return m.build_time_vars\n"
        "print(load(sys.argv[1]) == load(sys.argv[2]))\n"
    )
    ran = subprocess.run(
        [str(interpreter), "-c", compare, str(original), str(copy)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert (ran.returncode, ran.stdout) == (0, "True\n"), flat(ran.stderr)


def test_an_interpreter_without_pip_gets_this_pythons_pip_run_for_it(tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    without = probe(Candidate(str(bare / "bin" / "python"), "test"))
    command = packages.pip_for(without).formulate()
    assert command == [sys.executable, "-m", "pip", "--python", without.executable]
    # It installs for that interpreter, offline: the wheel ensurepip carries.
    import ensurepip

    (wheel,) = (Path(ensurepip.__file__).parent / "_bundled").glob("pip-*.whl")
    (requirements := tmp_path / "requirements.txt").write_text(f"{wheel}\n")
    site = tmp_path / "site-packages"
    with local.env(PIP_NO_INDEX="1"):
        packages.run_pip(without, site, None, requirements)
    assert (site / "pip" / "__init__.py").is_file()
