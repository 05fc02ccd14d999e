"""Copier refuses invalid answers before writing anything, with a message that
says what is allowed: one test per rule of copier.yml's validators."""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import pexpect
import pytest
import yaml

from .conftest import ROOT, copier_cli, copier_settings, copy_cli, render

# The tests render the working tree on purpose, uncommitted changes included.
pytestmark = pytest.mark.filterwarnings("ignore::copier.errors.DirtyLocalWarning")

NAME_CHARACTERS = 'Invalid project name: use ASCII letters, digits, "-", "_" (e.g. my-app).'
# Copier puts one of these before a validator's message.
# (Copier before 9.16 says only "Invalid choice: ".)
COPIER_PREFIX = re.compile(
    r"^(Validation error for question '\w+': |Invalid choice for '\w+': |Invalid choice: )"
)


def refused(tmp_path: Path, answers: dict[str, Any]) -> str:
    """Copier's message for answers it must refuse; nothing may be written."""
    destination = tmp_path / "project"
    with pytest.raises(ValueError, match=r"^(Validation error|Invalid choice)") as refusal:
        render(destination, answers)
    assert not destination.exists()
    message = str(refusal.value)
    # The rule and the fix come first, in a line that fits an 80-column terminal.
    first_line = COPIER_PREFIX.sub("", message).splitlines()[0]
    assert len(first_line) <= 76, first_line
    return message


def accepted(tmp_path: Path, answers: dict[str, Any]) -> dict[str, Any]:
    """The answers recorded by a render that must succeed."""
    project = render(tmp_path / "project", answers)
    return yaml.safe_load((project / ".copier-answers.yml").read_text(encoding="utf-8"))


# ---- project_name ----


def test_empty_project_name_is_refused(tmp_path):
    message = refused(tmp_path, {"project_name": ""})

    assert "question 'project_name'" in message
    assert "The project name is empty" in message
    assert 'for example "pyapp"' in message


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("my app", id="space-inside"),
        pytest.param("1app", id="leading-digit"),
        pytest.param("-app", id="leading-dash"),
        pytest.param("_app", id="leading-underscore"),
        pytest.param("a/b", id="path-separator"),
        pytest.param("..", id="dot-dot"),
        pytest.param("../escape", id="parent-folder"),
        pytest.param("a\\b", id="backslash"),
        pytest.param("café", id="non-ascii"),
        pytest.param("app\n", id="trailing-newline"),
    ],
)
def test_project_name_with_other_characters_is_refused(tmp_path, name):
    message = refused(tmp_path, {"project_name": name})

    assert "question 'project_name'" in message
    assert NAME_CHARACTERS in message


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("$(touch x)", id="command-substitution"),
        pytest.param("a;b", id="command-separator"),
        pytest.param("{{7*7}}", id="jinja-expression"),
    ],
)
def test_shell_and_jinja_syntax_in_project_name_is_refused_by_the_character_rule(
    tmp_path, monkeypatch, name
):
    monkeypatch.chdir(tmp_path)

    message = refused(tmp_path, {"project_name": name})

    assert NAME_CHARACTERS in message
    # Quoted back verbatim: neither evaluated by Jinja nor run by a shell.
    assert f'"{name}" must start with a letter' in message
    assert not (tmp_path / "x").exists()


def test_project_name_longer_than_64_characters_is_refused(tmp_path):
    message = refused(tmp_path, {"project_name": "a" * 65})

    assert "The project name is too long" in message
    assert "at most 64 characters" in message
    assert "It has 65." in message


@pytest.mark.parametrize("name", ["fn", "self", "Self", "async", "gen", "match"])
def test_rust_keyword_project_name_is_refused(tmp_path, name):
    message = refused(tmp_path, {"project_name": name})

    assert f'"{name}" is a Rust keyword: choose another, e.g. "{name}-app".' in message


@pytest.mark.parametrize(
    "name",
    [
        "test",
        "std",
        "core",
        "alloc",
        "proc_macro",
        "proc-macro",
        "build",
        "deps",
        "Test",
    ],
)
def test_project_name_that_cargo_refuses_is_refused(tmp_path, name):
    message = refused(tmp_path, {"project_name": name})

    assert f'"{name}" is reserved by Cargo: choose another' in message
    assert "Rust standard library or Cargo's build folders" in message


@pytest.mark.parametrize("name", ["con", "CON", "Nul", "lpt1", "COM9"])
def test_windows_reserved_file_name_is_refused_in_any_case(tmp_path, name):
    message = refused(tmp_path, {"project_name": name})

    assert f'"{name}" is reserved on Windows: choose another' in message
    assert f"{name}.exe.manifest could not exist there" in message


@pytest.mark.parametrize("name", ["libc", "pyembed", "pyo3", "regex"])
def test_name_of_a_crate_in_the_shipped_cargo_lock_is_refused(tmp_path, name):
    message = refused(tmp_path, {"project_name": name})

    assert f'"{name}" is a crate in Cargo.lock: choose another' in message
    assert "--data project_name=NAME" in message


def test_refused_lock_crate_names_are_exactly_the_packages_of_the_shipped_lock():
    # The validator reads hooks/support.yml, the project gets its engine's
    # Cargo.lock template: a crate added to one and not the other would let a
    # clashing name through.
    support = yaml.safe_load((ROOT / "hooks" / "support.yml").read_text(encoding="utf-8"))
    for engine, versions in support["engine_support"]["default"].items():
        lock_name = f"{{% if engine == '{engine}' %}}Cargo.lock{{% endif %}}.jinja"
        lock = (ROOT / "template" / lock_name).read_text(encoding="utf-8")
        packages = set(re.findall(r'^name = "([^"{]+)"$', lock, re.MULTILINE))
        (table,) = versions.values()

        assert set(table["lock_crates"]) == packages, engine


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("a", id="one-letter"),
        pytest.param("A1", id="capital-and-digit"),
        pytest.param("my-app_2", id="dash-and-underscore"),
        pytest.param("my-fn", id="keyword-as-a-part"),
        pytest.param("a" * 64, id="64-characters"),
    ],
)
def test_valid_project_name_is_accepted(tmp_path, name):
    assert accepted(tmp_path, {"project_name": name})["project_name"] == name


def test_invalid_project_name_on_the_command_line_fails_with_the_message_and_writes_nothing(
    tmp_path,
):
    destination = tmp_path / "project"

    result = copy_cli(destination, "project_name=1bad")

    assert result.returncode != 0
    assert '"1bad" must start with a letter' in result.stderr
    assert NAME_CHARACTERS in result.stderr
    assert not destination.exists()


# ---- run_module, run_code ----


@pytest.mark.parametrize(
    "module",
    [
        pytest.param("", id="empty"),
        pytest.param("1abc", id="leading-digit"),
        pytest.param("a..b", id="empty-part"),
        pytest.param("a.", id="trailing-dot"),
        pytest.param("my module", id="space-inside"),
        pytest.param("{{ 7*7 }}", id="jinja-expression"),
        pytest.param("http.server\n", id="trailing-newline"),
    ],
)
def test_run_module_that_is_not_a_dotted_python_name_is_refused(tmp_path, module):
    message = refused(tmp_path, {"run_mode": "module", "run_module": module})

    assert "question 'run_module'" in message
    assert "Not a module name: give dotted identifiers, such as http.server or app:main." in message
    assert f'"{module}" has a space' in message


@pytest.mark.parametrize("module", ["x.py", "my.app.py"])
def test_run_module_that_is_a_file_name_is_refused_with_the_module_name(tmp_path, module):
    message = refused(tmp_path, {"run_mode": "module", "run_module": module})

    assert f'A file name, not a module name: give "{module[:-3]}", without ".py".' in message


@pytest.mark.parametrize("module", ["http.server", "_private.main"])
def test_dotted_python_module_name_is_accepted(tmp_path, module):
    assert accepted(tmp_path, {"run_mode": "module", "run_module": module})["run_module"] == module


@pytest.mark.parametrize("module", ["app:main", "my.app.cli:run", "http.server"])
def test_run_module_as_module_or_module_colon_function_is_accepted(tmp_path, module):
    assert accepted(tmp_path, {"run_mode": "module", "run_module": module})["run_module"] == module


@pytest.mark.parametrize("module", ["app:", "app:1x", "app:main:x", ":main", "app:ma in"])
def test_run_module_with_a_function_that_is_not_an_identifier_is_refused(tmp_path, module):
    message = refused(tmp_path, {"run_mode": "module", "run_module": module})

    assert "Not a module name: give dotted identifiers, such as http.server or app:main." in message


def test_run_module_defaults_to_the_apps_main_function_or_this_without_an_app(tmp_path):
    assert accepted(tmp_path / "a", {"run_mode": "module"})["run_module"] == "demo:main"
    pyembed = accepted(tmp_path / "b", {"run_mode": "module", "engine": "pyembed"})
    assert pyembed["run_module"] == "demo:main"
    no_app = accepted(tmp_path / "c", {"run_mode": "module", "python_package": ""})
    assert no_app["run_module"] == "this"


# ---- python_package, run_mode=rust ----


@pytest.mark.parametrize(
    ("package", "says"),
    [
        pytest.param("My_App", "Not a package name: use lower-case letters", id="upper-case"),
        pytest.param("my-app", "Not a package name: use lower-case letters", id="dash"),
        pytest.param("1app", "Not a package name: use lower-case letters", id="leading-digit"),
        pytest.param("import", '"import" is a Python keyword: choose another', id="keyword"),
        pytest.param("json", '"json" is a standard module: choose another', id="stdlib"),
        pytest.param("demo_rs", '"demo_rs" is the project\'s Rust module', id="rust-module"),
    ],
)
def test_python_package_that_python_could_not_import_as_the_app_is_refused(tmp_path, package, says):
    message = refused(tmp_path, {"python_package": package})

    assert "question 'python_package'" in message
    assert says in message
    assert "--data python_package=NAME (empty: no app)" in message


def test_python_package_defaults_to_the_project_name_as_an_identifier_not_a_taken_one(tmp_path):
    assert accepted(tmp_path / "a", {"project_name": "My-App"})["python_package"] == "my_app"
    assert accepted(tmp_path / "b", {"project_name": "email"})["python_package"] == "email_app"
    assert accepted(tmp_path / "c", {"python_package": ""})["python_package"] == ""


@pytest.mark.parametrize(
    ("answers", "says"),
    [
        ({"engine": "pyembed"}, "run_mode=rust needs engine=pyo3"),
        ({"python_package": ""}, "run_mode=rust calls your app's Python code: give python_package"),
    ],
    ids=["pyembed", "no-app"],
)
def test_rust_run_mode_needs_the_pyo3_engine_and_an_app(tmp_path, answers, says):
    message = refused(tmp_path, {"run_mode": "rust", **answers})

    assert says in message


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("", id="empty"),
        pytest.param("   ", id="spaces"),
    ],
)
def test_empty_run_code_is_refused(tmp_path, code):
    message = refused(tmp_path, {"run_mode": "code", "run_code": code})

    assert "question 'run_code'" in message
    assert "The code to run is empty" in message
    assert "Or choose run_mode=repl" in message


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("print(1)\x00", id="nul"),
        pytest.param("print('\x1b[1m')", id="escape"),
    ],
)
def test_run_code_with_control_characters_is_refused(tmp_path, code):
    message = refused(tmp_path, {"run_mode": "code", "run_code": code})

    assert "The code contains control characters: use printable text, tabs, newlines." in message


def test_multi_line_run_code_with_tabs_is_accepted(tmp_path):
    code = "import sys\nfor argument in sys.argv:\n\tprint(argument)\n"

    assert accepted(tmp_path, {"run_mode": "code", "run_code": code})["run_code"] == code


# ---- pyembed_version ----


@pytest.mark.parametrize(
    "version",
    [
        pytest.param("abc", id="word"),
        pytest.param("0.24", id="two-parts"),
        pytest.param("v0.24.0", id="v-prefix"),
        pytest.param("0.24.0.1", id="four-parts"),
        pytest.param("01.2.3", id="leading-zero"),
        pytest.param("0.24.0\n", id="trailing-newline"),
    ],
)
def test_pyembed_version_that_is_not_a_version_is_refused(tmp_path, version):
    message = refused(tmp_path, {"engine": "pyembed", "pyembed_version": version})

    assert "question 'pyembed_version'" in message
    assert f'"{version}" is not a version' in message
    assert "MAJOR.MINOR.PATCH" in message


@pytest.mark.parametrize("version", ["0.23.0", "1.0.0"])
def test_pyembed_version_without_support_table_is_refused_with_the_supported_list(
    tmp_path, version
):
    message = refused(tmp_path, {"engine": "pyembed", "pyembed_version": version})

    assert "Unsupported pyembed version: choose 0.24.0." in message


# ---- Contradictory choices ----


@pytest.mark.parametrize(
    ("allocator", "which"),
    [
        pytest.param("global_allocator", "global_allocator", id="rust-global-allocator"),
        pytest.param("python_allocator", "python_allocator", id="python-allocator"),
    ],
)
def test_windows_subsystem_with_jemalloc_is_refused(tmp_path, allocator, which):
    message = refused(tmp_path, {"windows_subsystem": "windows", allocator: "jemalloc"})

    words = " ".join(message.split())
    assert "windows needs an allocator other than jemalloc, which Windows lacks." in words
    assert f"answer {which} with mimalloc, snmalloc or the default" in words


def test_windows_subsystem_with_mimalloc_is_accepted(tmp_path):
    answers = {
        "windows_subsystem": "windows",
        "global_allocator": "mimalloc",
        "python_allocator": "mimalloc",
    }

    recorded = accepted(tmp_path, answers)

    assert {key: recorded[key] for key in answers} == answers


def test_pyoxidizer_exe_build_mode_with_the_pyo3_engine_is_refused(tmp_path):
    message = refused(tmp_path, {"engine": "pyo3", "build_mode": "pyoxidizer-exe"})

    assert "pyoxidizer-exe needs engine=pyembed" in message


def test_pyoxidizer_exe_build_mode_with_the_pyembed_engine_is_accepted(tmp_path):
    answers = {"engine": "pyembed", "build_mode": "pyoxidizer-exe"}

    assert accepted(tmp_path, answers)["build_mode"] == "pyoxidizer-exe"


def test_a_name_taken_from_the_destination_folder_says_so_and_how_to_fix_it(tmp_path):
    destination = tmp_path / "My App"

    result = copier_cli(
        "copy", "--trust", "--defaults", "--vcs-ref=HEAD", str(ROOT), str(destination)
    )

    assert result.returncode != 0
    assert 'taken from the destination folder "My App"' in result.stderr
    assert "--data project_name=NAME" in result.stderr
    assert not destination.exists()


# ---- Choices ----


@pytest.mark.parametrize(
    ("question", "allowed"),
    [
        ("engine", ["pyo3", "pyembed"]),
        # pyoxidizer-exe is offered with engine=pyembed only.
        ("build_mode", ["standalone", "prebuilt-artifacts"]),
        ("global_allocator", ["system", "jemalloc", "mimalloc", "snmalloc"]),
        ("python_allocator", ["default", "jemalloc", "mimalloc", "snmalloc"]),
        ("windows_subsystem", ["console", "windows"]),
        ("run_mode", ["repl", "module", "code", "rust"]),
    ],
)
def test_value_outside_the_choices_is_refused_with_the_choices(tmp_path, question, allowed):
    message = refused(tmp_path, {question: "cobol"})

    assert "Invalid choice" in message
    if message != "Invalid choice":  # Copier before 9.16 names neither question nor choices
        assert f"Invalid choice for '{question}'" in message
        assert repr(allowed) in message


# ---- Readable at 80 columns ----


def test_every_question_has_a_help_whose_first_line_fits_76_columns():
    questions = {
        name: spec
        for name, spec in copier_settings().items()
        if not name.startswith("_") and isinstance(spec, dict) and spec.get("when") is not False
    }

    assert len(questions) >= 10
    for name, spec in questions.items():
        first_line = spec["help"].splitlines()[0]
        assert len(first_line) <= 76, f"{name}: {first_line!r}"
        assert "default" in spec, name


# ---- The same rules in an interactive prompt ----


def test_an_interactive_copy_refuses_windows_with_jemalloc_and_accepts_console(tmp_path):
    """A real `copier copy` in a pseudo-terminal: Copier runs no question
    validator on a choice there, so the rule must come from the choice itself."""
    destination = tmp_path / "app"
    child = pexpect.spawn(
        sys.executable,
        ["-m", "copier", "copy", "--vcs-ref=HEAD", "--skip-tasks", str(ROOT), str(destination)],
        env={**os.environ, "TERM": "xterm", "COLUMNS": "80", "LINES": "40"},
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 80),
    )

    def answer(help_text: str, keys: str) -> None:
        """Wait for the question (its help text) and its prompt, then press keys."""
        child.expect(help_text)
        time.sleep(0.5)  # the prompt draws itself, then reads keys
        child.send(keys)

    down = "\x1b[B"
    answer("Name of the Cargo package", "\r")  # the default: the folder's name
    answer("Your app's Python package", "\r")  # the default: the project's name
    answer("Embedding engine", "\r")  # pyo3
    answer("Default build mode", "\r")
    answer("Memory allocator for Rust", down + "\r")  # jemalloc
    answer("Memory allocator for Python", "\r")
    # "windows" is shown disabled, with the rule and the fix, and cannot be
    # chosen: the arrow key skips it, so Enter takes "console".
    child.expect("Windows subsystem")
    child.expect(r"windows \(GUI program, Windows only\) \(windows needs an allocator other than")
    time.sleep(0.5)
    child.send(down + "\r")
    answer("What the program runs", "\r")
    answer("Continuous integration", "\r")  # github
    answer("Build now?", "\r")  # no
    child.expect(pexpect.EOF, timeout=120)
    child.close()
    assert child.exitstatus == 0, child.before
    recorded = yaml.safe_load((destination / ".copier-answers.yml").read_text())
    assert recorded["global_allocator"] == "jemalloc"
    assert recorded["windows_subsystem"] == "console"
