"""Bad input and trust: hostile answers run nothing, Copier's --trust and
--skip-tasks mean what they say, and a re-run never overwrites silently.

(Each validator rule has its own test in test_validators.py.)
"""

from __future__ import annotations

import ast
import re
import stat
from pathlib import Path

import pytest
import yaml

from .conftest import (
    GENERATED_FILES,
    ROOT,
    commit_all,
    copier_cli,
    copier_settings,
    copy_cli,
    files,
    flat,
    git,
    render,
)


def payloads(marker: Path) -> dict[str, str]:
    """Strings that would create `marker` if any shell or template engine ran them."""
    return {
        "command-substitution": f"$(touch {marker})",
        "backticks": f"`touch {marker}`",
        "semicolon": f"x; touch {marker}",
        "pipe": f"x | touch {marker}",
        "and": f"x && touch {marker}",
        "newline": f"x\ntouch {marker}",
        "jinja": "{{ cycler.__init__.__globals__.os.popen('touch " + str(marker) + "').read() }}",
    }


# ---- Nothing an answer says reaches a shell ----


def test_every_task_and_migration_is_a_list_command_run_without_a_shell() -> None:
    settings = copier_settings()
    entries = settings["_tasks"] + settings["_migrations"]
    assert entries
    for entry in entries:
        assert isinstance(entry, dict), entry
        assert isinstance(entry["command"], list), f"string commands run in a shell: {entry}"


def test_task_and_migration_commands_name_no_answer() -> None:
    """Answers are read from the answers file, never passed as arguments."""
    settings = copier_settings()
    answers = [name for name, value in settings.items() if not name.startswith("_")]
    for entry in settings["_tasks"] + settings["_migrations"]:
        for part in entry["command"]:
            used = set(re.findall(r"\b([a-z_]+)\b", part)) & set(answers)
            assert used <= {"run_build"}, f"{part!r} passes answers {used}"


def test_the_hooks_never_start_a_shell() -> None:
    """A source scan: no shell=True, os.system/os.popen, or shell program."""
    forbidden = re.compile(
        r"shell\s*=\s*True|os\.system|os\.popen|commands\.getoutput|"
        r"local\[\s*['\"](?:sh|bash|zsh|cmd|powershell)['\"]\s*\]|['\"](?:/bin/)?(?:ba)?sh['\"]\s*,\s*['\"]-c['\"]"
    )
    sources = sorted((ROOT / "hooks").glob("*.py"))
    assert sources
    for path in sources:
        text = path.read_text()
        ast.parse(text)  # every module is valid Python
        assert not forbidden.search(text), f"{path.name} starts a shell"
    build_scripts = [path for path in (ROOT / "template").iterdir() if "build.rs" in path.name]
    assert len(build_scripts) == 2  # one per engine
    for path in build_scripts:
        assert not re.search(r'Command::new\("(?:sh|bash|cmd)"\)', path.read_text())


@pytest.mark.parametrize("answer", ["project_name", "run_module", "pyembed_version"])
def test_shell_and_jinja_payloads_in_checked_answers_are_refused_and_run_nothing(
    answer: str, tmp_path: Path
) -> None:
    marker = tmp_path / "PWNED"
    extra = {"run_module": {"run_mode": "module"}, "pyembed_version": {"engine": "pyembed"}}.get(
        answer, {}
    )
    for name, payload in payloads(marker).items():
        dest = tmp_path / name
        with pytest.raises(ValueError, match=f"Validation error for question '{answer}'"):
            render(dest, {**extra, answer: payload}, tasks=True)
        assert not dest.exists(), name
    assert not marker.exists()


def test_shell_and_jinja_payloads_in_run_code_are_kept_as_text_and_run_nothing(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "PWNED"
    for name, payload in payloads(marker).items():
        dest = render(tmp_path / name, {"run_mode": "code", "run_code": payload}, tasks=True)
        assert set(files(dest)) == GENERATED_FILES
        # Stored as the answer, not evaluated.
        assert yaml.safe_load((dest / ".copier-answers.yml").read_text())["run_code"] == payload
    assert not marker.exists()


# ---- Trust ----


def recording_python(tmp_path: Path) -> tuple[Path, Path]:
    """A PYO3_PYTHON that leaves a file behind if anything runs it."""
    marker = tmp_path / "RAN"
    script = tmp_path / "python3"
    script.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, marker


def test_without_trust_copier_refuses_the_template_and_writes_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "demo"
    result = copy_cli(dest, "project_name=demo", trust=False)
    assert result.returncode == 4
    assert "--trust" in flat(result.stderr)
    assert not dest.exists()


def test_skip_tasks_without_trust_writes_every_file_and_runs_no_code(tmp_path: Path) -> None:
    python, marker = recording_python(tmp_path)
    dest = tmp_path / "demo"
    result = copier_cli(
        "copy", "--defaults", "--vcs-ref=HEAD", "--skip-tasks", "--data", "project_name=demo",
        str(ROOT), str(dest), env={"PYO3_PYTHON": str(python)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert set(files(dest)) == GENERATED_FILES
    assert "Checking the Python" not in result.stdout
    assert not marker.exists()


def test_the_readme_says_what_the_hooks_run_and_why_trust_is_needed() -> None:
    readme = flat((ROOT / "README.md").read_text())
    assert "What runs on your machine, and why `--trust`" in readme
    assert "--skip-tasks" in readme
    assert "runs no code" in readme


# ---- Re-running over an existing project ----


def test_copying_again_over_a_changed_project_never_overwrites_it_silently(
    tmp_path: Path,
) -> None:
    dest = render(tmp_path / "demo")
    main = dest / "src" / "main.rs"
    main.write_text(main.read_text() + "// mine\n")
    before = files(dest)
    result = copy_cli(dest, "project_name=demo")
    assert result.returncode != 0
    assert "--overwrite" in flat(result.stdout + result.stderr)
    assert main.read_text().endswith("// mine\n")
    assert files(dest) == before


def test_update_with_an_invalid_answer_is_refused_and_changes_nothing(
    template_repo: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "demo"
    made = copier_cli("copy", "--trust", "--defaults", "--data", "project_name=demo",
                      str(template_repo), str(dest))  # fmt: skip
    assert made.returncode == 0, made.stderr
    git(dest, "init", "-q")
    commit_all(dest, "generated")
    before = files(dest)
    result = copier_cli(
        "update", "--trust", "--defaults", "--data", "project_name=bad name", cwd=dest
    )
    assert result.returncode != 0
    assert "Invalid project name" in flat(result.stderr)
    assert files(dest) == before
