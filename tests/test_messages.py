"""What Copier prints at the end of a copy or an update: the folder quoted for
the shell, the command that matches the run mode, the engine named."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from .conftest import ROOT, commit_all, copier_cli, copy_cli, flat, git

# The tests render the working tree on purpose, uncommitted changes included.
pytestmark = pytest.mark.filterwarnings("ignore::copier.errors.DirtyLocalWarning")


def cd_line(message: str) -> str:
    (line,) = [line.strip() for line in message.splitlines() if line.strip().startswith("cd ")]
    return line


def test_the_message_after_a_copy_quotes_a_folder_with_spaces_and_quotes(tmp_path: Path) -> None:
    dest = tmp_path / "it's my app"
    result = copy_cli(dest, "project_name=app")
    assert result.returncode == 0, result.stderr
    line = cd_line(result.stderr)
    # The shell reads the quoted folder back exactly.
    (word,) = shlex.split(line)[1:]
    assert word == str(dest)
    assert subprocess.run(["sh", "-c", f"{line} && pwd"], capture_output=True, text=True,
                          check=True).stdout.strip() == str(dest)  # fmt: skip
    assert f'Your project "app" (pyo3 engine) is ready in {dest}.' in flat(result.stderr)
    assert './target/debug/app -c "import sys; print(sys.version)"' in result.stderr
    assert "$CARGO_TARGET_DIR/debug/app" in result.stderr


@pytest.mark.parametrize("run_mode", ["module", "code"])
def test_the_command_to_try_matches_the_run_mode(tmp_path: Path, run_mode: str) -> None:
    result = copy_cli(tmp_path / "app", "project_name=app", f"run_mode={run_mode}")
    assert result.returncode == 0, result.stderr
    tries = [line.strip() for line in result.stderr.splitlines() if "./target/debug/app" in line]
    assert tries == ["./target/debug/app"]


def test_the_message_after_an_update_says_updated_not_ready(
    template_repo: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "app"
    made = copier_cli("copy", "--trust", "--defaults", "--skip-tasks", "--data",
                      "project_name=app", str(template_repo), str(dest))  # fmt: skip
    assert made.returncode == 0, made.stderr
    git(dest, "init", "-q")
    commit_all(dest, "generated")
    result = copier_cli("update", "--trust", "--defaults", "--skip-tasks", cwd=dest)
    assert result.returncode == 0, result.stderr
    message = flat(result.stderr)
    assert f'Project "app" (pyo3 engine) is updated in {dest}.' in message
    assert "is ready in" not in message
    assert "git diff" in message


def test_the_message_after_adopting_a_folder_names_it_not_dot(tmp_path: Path) -> None:
    """`copier copy ... .` over an existing project, as the README's adoption
    steps do: the message names the folder, never "."."""
    project = tmp_path / "app"
    project.mkdir()
    (project / "mine.txt").write_text("kept\n")
    result = copier_cli(
        "copy", "--trust", "--defaults", "--overwrite", "--vcs-ref=HEAD", "--skip-tasks",
        "--data", "project_name=app", str(ROOT), ".", cwd=project,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"is ready in {project}." in flat(result.stderr)
    assert "ready in ." not in flat(result.stderr)
    assert cd_line(result.stderr) == f"cd '{project}'"
    assert (project / "mine.txt").read_text() == "kept\n"
