"""`copier update`: template changes reach a project, the user's edits stay.

Each test builds a throw-away template repository from this repository's
files with two tagged versions: v0.1.0 is an "early" template that still
generates `.cargo/config` (Cargo's old name), v0.2.0 is the current template
plus a change to src/main.rs, so there is a template fix to bring in.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

from .conftest import (
    ROOT,
    commit_all,
    copier_cli,
    files,
    flat,
    git,
    pyenv_python,
    require,
    working_tree,
)

PYEMBED_MAIN = "{% if engine == 'pyembed' %}main.rs{% endif %}.jinja"
PYEMBED_CARGO_CONFIG = "{% if engine == 'pyembed' %}config.toml{% endif %}"
MAIN_OLD = "// {{ project_name }}: a program that runs an embedded Python interpreter."
MAIN_NEW = "// {{ project_name }}: a program that embeds Python (updated template)."


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two-version template repository."""
    repo = working_tree(tmp_path_factory.mktemp("template") / "repo")
    git(repo, "init", "-q")
    cargo_dir = repo / "template" / ".cargo"
    (cargo_dir / PYEMBED_CARGO_CONFIG).rename(cargo_dir / "config")
    commit_all(repo, "early template: .cargo/config")
    git(repo, "tag", "v0.1.0")
    (cargo_dir / "config").rename(cargo_dir / PYEMBED_CARGO_CONFIG)
    edit(repo / "template" / "src" / PYEMBED_MAIN, MAIN_OLD, MAIN_NEW)
    commit_all(repo, "template fix")
    git(repo, "tag", "v0.2.0")
    return repo


def generate(
    template: Path, dest: Path, *data: str, ref: str = "v0.1.0", tasks: bool | None = None
) -> Path:
    args = ["copy", "--trust", "--defaults", f"--vcs-ref={ref}", "--data", "project_name=demo"]
    args += ["--data", "engine=pyembed"]
    if not (ref != "v0.1.0" if tasks is None else tasks):
        # The early template had no hooks: its .cargo/config stays as generated.
        args.append("--skip-tasks")
    for item in data:
        args += ["--data", item]
    result = copier_cli(*args, str(template), str(dest))
    assert result.returncode == 0, result.stderr
    git(dest, "init", "-q")
    commit_all(dest, "generated")
    return dest


def update(project: Path, *args: str):
    result = copier_cli("update", "--trust", "--defaults", *args, cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def file_edits(project: Path) -> None:
    """A line in src/main.rs, a new file, a changed dependency."""
    with (project / "src" / "main.rs").open("a") as main:
        main.write("\n// The user's own line.\n")
    (project / "NOTES.md").write_text("The user's own file.\n")
    edit(
        project / "Cargo.toml",
        'jemallocator = { version = "0.5.4"',
        'jemallocator = { version = "0.5"',
    )


def user_edits(project: Path) -> None:
    """file_edits, and Cargo settings in .cargo/config."""
    file_edits(project)
    config = project / ".cargo" / "config"
    edit(config, "#[target.x86_64-pc-windows-msvc]\n", "[target.x86_64-pc-windows-msvc]\n")
    old_flags = (
        '#rustflags = ["-C", "target-feature=+crt-static", "-C", "link-args=/FORCE:MULTIPLE"]'
    )
    edit(
        config,
        f"{old_flags}\n\n#[target.i686",
        'rustflags = ["-C", "target-feature=+crt-static"]\n\n#[target.i686',
    )
    with config.open("a") as text:
        text.write('\n[env]\nUSER_SETTING = "kept"\n')
    commit_all(project, "user edits")


def answers(project: Path) -> dict:
    return yaml.safe_load((project / ".copier-answers.yml").read_text())


def test_update_applies_the_template_change_and_keeps_every_user_edit(
    template: Path, tmp_path: Path
) -> None:
    project = generate(template, tmp_path / "demo")
    assert (project / ".cargo" / "config").is_file()
    user_edits(project)
    result = update(project)

    main = (project / "src" / "main.rs").read_text()
    assert main.startswith("// demo: a program that embeds Python (updated template).")
    assert "// The user's own line." in main
    assert (project / "NOTES.md").read_text() == "The user's own file.\n"
    assert (
        'jemallocator = { version = "0.5", optional = true }'
        in (project / "Cargo.toml").read_text()
    )
    assert answers(project)["_commit"] == "v0.2.0"
    # The migration moved the user's Cargo settings to the file's current name.
    assert not (project / ".cargo" / "config").exists()
    config = (project / ".cargo" / "config.toml").read_text()
    assert (
        '[target.x86_64-pc-windows-msvc]\nrustflags = ["-C", "target-feature=+crt-static"]'
        in config
    )
    assert 'USER_SETTING = "kept"' in config
    assert "Moved the settings of .cargo/config into .cargo/config.toml" in flat(result.stdout)
    assert not [name for name in files(project) if name.endswith((".rej", ".orig"))]


def assert_only_the_settings_moved(project: Path, template: Path, ref: str, tmp: Path) -> None:
    """The project is a fresh render of `ref` with the same file edits, and its
    .cargo/config.toml is the template's plus the user's settings."""
    expected = generate(template, tmp / "expected", ref=ref, tasks=False)
    file_edits(expected)
    compared = [files(project), files(expected)]
    for contents in compared:
        for name in [n for n in contents if n.startswith(".git/")]:
            del contents[name]
        for name in (".copier-answers.yml", ".cargo/config.toml"):
            del contents[name]
    assert compared[0] == compared[1]
    config = (project / ".cargo" / "config.toml").read_text()
    assert config.startswith((expected / ".cargo" / "config.toml").read_text())
    assert (
        '[target.x86_64-pc-windows-msvc]\nrustflags = ["-C", "target-feature=+crt-static"]'
        in config
    )
    assert 'USER_SETTING = "kept"' in config
    assert not (project / ".cargo" / "config").exists()
    assert not (project / ".cargo" / "config.settings-to-move.toml").exists()
    # The boilerplate comment blocks both files were generated with, once.
    assert config.count("#[target.i686-pc-windows-msvc]") == 1


@pytest.mark.parametrize("tasks", [True, False], ids=["with-tasks", "skip-tasks"])
def test_settings_in_the_old_cargo_config_move_to_config_toml_and_nothing_else_changes(
    template: Path, tmp_path: Path, tasks: bool
) -> None:
    project = generate(template, tmp_path / "demo")
    user_edits(project)
    update(project, *([] if tasks else ["--skip-tasks"]))
    assert answers(project)["_commit"] == "v0.2.0"
    assert_only_the_settings_moved(project, template, "v0.2.0", tmp_path)


@pytest.mark.parametrize("tasks", [True, False], ids=["with-tasks", "skip-tasks"])
def test_the_settings_move_between_commits_of_a_template_without_tags(
    template: Path, tmp_path: Path, tasks: bool
) -> None:
    untagged = tmp_path / "untagged"
    shutil.copytree(template, untagged, symlinks=True)
    for tag in ("v0.1.0", "v0.2.0"):
        git(untagged, "tag", "-d", tag)
    first, second = git(untagged, "rev-list", "--reverse", "HEAD").split()
    project = generate(untagged, tmp_path / "demo", ref=first, tasks=False)
    assert first.startswith(answers(project)["_commit"])  # no tag: Copier records the commit
    user_edits(project)
    update(project, f"--vcs-ref={second}", *([] if tasks else ["--skip-tasks"]))
    assert_only_the_settings_moved(project, untagged, second, tmp_path)


def test_a_line_changed_by_both_sides_is_shown_inline_and_nothing_else_is_lost(
    template: Path, tmp_path: Path
) -> None:
    project = generate(template, tmp_path / "demo")
    main = project / "src" / "main.rs"
    edit(main, "// demo: a program that runs an embedded Python interpreter.",
         "// demo: the user's description of the program.")  # fmt: skip
    (project / "NOTES.md").write_text("kept\n")
    commit_all(project, "user edits the first line")
    update(project, "--conflict", "inline")

    text = main.read_text()
    assert "<<<<<<< before updating" in text
    assert "// demo: the user's description of the program." in text
    assert "// demo: a program that embeds Python (updated template)." in text
    assert ">>>>>>> after updating" in text
    assert "fn main()" in text  # the rest of the file is intact
    assert (project / "NOTES.md").read_text() == "kept\n"


def test_changing_an_answer_rerenders_the_default_features_and_matching_config(
    template: Path, tmp_path: Path
) -> None:
    project = generate(template, tmp_path / "demo", ref="v0.2.0")
    update(project, "--data", "global_allocator=mimalloc", "--data", "python_allocator=mimalloc")
    cargo_toml = (project / "Cargo.toml").read_text()
    assert (
        'default = ["build-mode-standalone", "global-allocator-mimalloc", "allocator-mimalloc"]'
        in cargo_toml
    )
    assert (
        'python_config.allocator_backend = "mimalloc"' in (project / "pyoxidizer.bzl").read_text()
    )
    assert answers(project)["global_allocator"] == "mimalloc"
    assert answers(project)["python_allocator"] == "mimalloc"


def test_update_does_not_rebuild_unless_asked(template: Path, tmp_path: Path) -> None:
    project = generate(template, tmp_path / "demo", ref="v0.2.0")
    result = update(project)
    assert "Step 1 of 2" not in result.stdout
    assert not (project / "target").exists()


def test_the_migration_runs_once(template: Path, tmp_path: Path) -> None:
    project = generate(template, tmp_path / "demo")
    user_edits(project)
    update(project, "--vcs-ref=v0.2.0")
    commit_all(project, "updated to v0.2.0")
    config = (project / ".cargo" / "config.toml").read_text()

    # A later template version: updating again crosses no migration version.
    later = tmp_path / "later"
    shutil.copytree(template, later, symlinks=True)
    edit(
        later / "template" / "{% if engine == 'pyembed' %}README.md{% endif %}.jinja",
        "# {{ project_name }}\n",
        "# {{ project_name }} (v0.3)\n",
    )
    commit_all(later, "v0.3.0")
    git(later, "tag", "v0.3.0")
    (project / ".copier-answers.yml").write_text(
        (project / ".copier-answers.yml").read_text().replace(str(template), str(later))
    )
    commit_all(project, "point at the later template")
    result = update(project)
    assert answers(project)["_commit"] == "v0.3.0"
    assert "Moved the settings" not in result.stdout
    assert (project / ".cargo" / "config.toml").read_text() == config
    assert (project / "README.md").read_text().startswith("# demo (v0.3)")


@pytest.mark.e2e
def test_updated_project_with_moved_settings_still_builds_locked(
    template: Path, tmp_path: Path, cargo_target_root: Path
) -> None:
    require("cargo")
    project = generate(template, tmp_path / "demo")
    user_edits(project)
    update(project)
    build = subprocess.run(
        ["cargo", "build", "--locked"],
        cwd=project,
        env={**os.environ, "CARGO_TARGET_DIR": str(cargo_target_root / "default")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    assert "both `.cargo/config` and `.cargo/config.toml` exist" not in build.stderr


@pytest.mark.e2e
def test_a_project_made_by_pyoxidizer_is_adopted_and_then_builds_and_runs(
    tmp_path: Path, cargo_target_root: Path
) -> None:
    """The README's adoption steps on real `pyoxidizer init-rust-project` output."""
    pyoxidizer = require("pyoxidizer")
    made = subprocess.run(
        [pyoxidizer, "--system-rust", "init-rust-project", "app"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    project = tmp_path / "app"
    assert (project / ".cargo" / "config").is_file()
    (project / "app_module.py").write_text("print('mine')\n")
    if not (project / ".git").is_dir():
        git(project, "init", "-q")
    commit_all(project, "made by pyoxidizer")

    result = copier_cli(
        "copy", "--trust", "--defaults", "--overwrite", "--vcs-ref=HEAD",
        "--data", "project_name=app", "--data", "engine=pyembed", str(ROOT), str(project),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Removed .cargo/config" in flat(result.stdout)
    assert not (project / ".cargo" / "config").exists()
    assert (project / "app_module.py").read_text() == "print('mine')\n"
    assert answers(project)["project_name"] == "app"

    target_dir = cargo_target_root / "default"
    build = subprocess.run(
        ["cargo", "build", "--locked"],
        cwd=project,
        env={**os.environ, "CARGO_TARGET_DIR": str(target_dir)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    ran = subprocess.run(
        [str(target_dir / "debug" / "app"), "-c", "import ssl, sqlite3; print('adopted')"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.stdout == "adopted\n", ran.stderr


# ---- Projects from before the engine question ----


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This repository's history, with the commit before the pyo3 engine tagged
    v0.2.0 and the working tree committed on top as v0.3.0."""
    repo = tmp_path_factory.mktemp("history") / "repo"
    cloned = subprocess.run(
        ["git", "clone", "-q", "--no-local", str(ROOT), str(repo)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert cloned.returncode == 0, cloned.stderr
    pyo3_build_rs = "template/{% if engine == 'pyo3' %}build.rs{% endif %}.jinja"
    added = git(repo, "log", "--diff-filter=A", "--format=%H", "--", pyo3_build_rs).split()
    assert added, "the repository's history must hold the commit that added the pyo3 engine"
    git(repo, "tag", "v0.2.0", f"{added[-1]}^")
    working_tree(repo)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", "the working tree")
    git(repo, "tag", "v0.3.0")
    return repo


def dependencies(project: Path) -> dict:
    return tomllib.loads((project / "Cargo.toml").read_text())["dependencies"]


def from_before_the_engine_question(history: Path, dest: Path) -> Path:
    result = copier_cli(
        "copy", "--trust", "--defaults", "--skip-tasks", "--vcs-ref=v0.2.0",
        "--data", "project_name=old", str(history), str(dest),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "engine" not in answers(dest)
    git(dest, "init", "-q")
    commit_all(dest, "generated")
    return dest


def test_a_project_from_before_the_engine_question_stays_on_pyembed_through_update_defaults(
    history: Path, tmp_path: Path
) -> None:
    project = from_before_the_engine_question(history, tmp_path / "old")
    before = dependencies(project)
    update(project, "--skip-tasks")
    assert answers(project)["_commit"] == "v0.3.0"
    assert answers(project)["engine"] == "pyembed"
    assert answers(project)["pyembed_version"] == "0.24.0"
    after = dependencies(project)
    # Every dependency as it was; new ones only what src/python_start.rs uses
    # (pyembed's own pyo3-ffi, and libc), not pyo3 0.30.
    assert {name: after[name] for name in before} == before
    assert set(after) - set(before) == {"pyo3-ffi", "libc"}
    assert after["pyo3-ffi"] == "=0.17.3"
    assert (project / "pyoxidizer.bzl").is_file()
    assert not (project / "src" / "interpreter.rs").exists()


@pytest.mark.e2e
def test_update_with_engine_pyo3_switches_a_project_from_before_and_it_builds_and_runs(
    history: Path, tmp_path: Path, cargo_target_root: Path
) -> None:
    project = from_before_the_engine_question(history, tmp_path / "old")
    update(project, "--skip-tasks", "--data", "engine=pyo3")
    assert answers(project)["engine"] == "pyo3"
    assert "pyembed_version" not in answers(project)
    assert "pyembed" not in dependencies(project)
    assert dependencies(project)["pyo3"]["version"] == "0.30.1"
    for gone in ("pyoxidizer.bzl", "src/python_config.rs"):
        assert not (project / gone).exists(), gone
    assert (project / "src" / "interpreter.rs").is_file()
    assert not [n for n, c in files(project).items() if b"<<<<<<< before updating" in c]

    python = pyenv_python("3.11")
    assert python, "the pyo3 build links pyenv's CPython 3.11"
    target_dir = cargo_target_root / "pyo3-3.11"
    build = subprocess.run(
        ["cargo", "build", "--locked"],
        cwd=project,
        env={**os.environ, "CARGO_TARGET_DIR": str(target_dir), "PYO3_PYTHON": str(python)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    ran = subprocess.run(
        [
            str(target_dir / "debug" / "old"),
            "-c",
            "import sqlite3, old_rs; print(old_rs.add(1, 2))",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.stdout == "3\n", ran.stderr


# ---- The application's home (python_package) ----

# main's commit before the app home and python_package existed.
BEFORE_APP_HOME = "47fb9559a66908b9d99c2245478e2871435b80a7"


@pytest.fixture(scope="module")
def app_home_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """v1.0.0: this repository at BEFORE_APP_HOME; v2.0.0: its working tree."""
    repo = tmp_path_factory.mktemp("app-home") / "repo"
    repo.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", BEFORE_APP_HOME], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(repo)], input=archive, check=True)
    git(repo, "init", "-q")
    commit_all(repo, "before the app home")
    git(repo, "tag", "v1.0.0")
    for entry in repo.iterdir():
        if entry.name != ".git":
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    working_tree(repo)
    commit_all(repo, "the app home")
    git(repo, "tag", "v2.0.0")
    return repo


@pytest.mark.parametrize("run_mode", ["repl", "module"])
def test_an_update_of_a_project_made_before_the_app_home_adds_nothing_unasked(
    app_home_template: Path, tmp_path: Path, run_mode: str
) -> None:
    project = tmp_path / "demo"
    made = copier_cli(
        "copy", "--trust", "--defaults", "--skip-tasks", "--vcs-ref=v1.0.0", "--data",
        "project_name=demo", "--data", f"run_mode={run_mode}", str(app_home_template), str(project),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    git(project, "init", "-q")
    commit_all(project, "generated")
    before = answers(project)
    update(project, "--skip-tasks")

    after = answers(project)
    assert after["_commit"] == "v2.0.0"
    assert after["python_package"] == ""
    assert not (project / "python").exists()
    assert after.get("run_module") == before.get("run_module")  # "this" in module mode
    assert {k: v for k, v in after.items() if k not in ("_commit", "python_package")} == {
        k: v for k, v in before.items() if k != "_commit"
    }
    # Asked for, the update adds it.
    commit_all(project, "updated")
    update(project, "--skip-tasks", "--data", "python_package=demo_app")
    assert (project / "python" / "demo_app" / "__init__.py").is_file()
    assert (project / "python" / "pyproject.toml").is_file()
