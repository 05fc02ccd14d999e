"""Text both engines' README.md, build.rs and Cargo.toml say alike lives once,
in partials/ (Jinja macros each engine's template calls), and moving it there
changed no generated pyembed project: every answer combination renders
byte for byte as it did at BASE, rendered from a throwaway clone.

BASE was first main's commit the partials were merged into (c28cb1f), so
the merge itself changed no generated pyembed file. A later deliberate
change to what pyembed projects hold moves it forward (to that change's
commit) and says so in the commit message: now f14b0cd, the last commit of
issue 21 (the app's home python/, its isolation and entry point, Ship your
application in the README).
"""

from __future__ import annotations

import copy
import difflib
import itertools
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import copier
import jinja2
import pytest

from .conftest import ROOT, files, git, missing, working_tree

BASE = "f14b0cdee2a17e5e10b4c16e664f204345834a6e"
SHARED_FILES = ("README.md", "build.rs", "Cargo.toml")
ENGINES = ("pyo3", "pyembed")

# The choice questions' answers for pyembed (windows with jemalloc is refused),
# and the free-text answers their modes ask for.
RUN_MODES = [
    {"run_mode": "repl"},
    {"run_mode": "module", "run_module": "http.server"},
    {"run_mode": "code", "run_code": "print(\"a\\\\b\", '{{ 7 }}')\n\tx = 1  # café"},
]
ALLOCATORS = ["system", "jemalloc", "mimalloc", "snmalloc"]
PYTHON_ALLOCATORS = ["default", "jemalloc", "mimalloc", "snmalloc"]


def pyembed_answers() -> Iterator[dict[str, Any]]:
    for build_mode, rust, python, subsystem, run, ci in itertools.product(
        ["standalone", "pyoxidizer-exe", "prebuilt-artifacts"],
        ALLOCATORS,
        PYTHON_ALLOCATORS,
        ["console", "windows"],
        RUN_MODES,
        ["github", "none"],
    ):
        if subsystem == "windows" and "jemalloc" in (rust, python):
            continue
        yield {
            "project_name": "demo",
            "engine": "pyembed",
            "pyembed_version": "0.24.0",
            "build_mode": build_mode,
            "global_allocator": rust,
            "python_allocator": python,
            "windows_subsystem": subsystem,
            "ci": ci,
            **run,
        }
    # Names of other shapes, where Cargo.lock places the project elsewhere.
    for name in ("a", "My-App_2", "zz"):
        yield {"project_name": name, "engine": "pyembed"}


def template_file(engine: str, name: str) -> Path:
    return ROOT / "template" / f"{{% if engine == '{engine}' %}}{name}{{% endif %}}.jinja"


@pytest.fixture
def fast_renders(monkeypatch: pytest.MonkeyPatch) -> None:
    """Copier compiles every template again for each copy, parses copier.yml
    again, and asks git about the template and each file written: remember the
    first two, and tell it git is not there (the templates here are plain
    folders), so that hundreds of copies take a minute. (Every copy's Jinja
    environment is configured alike.)"""
    compile_template = jinja2.Environment.compile
    compiled: dict[tuple, Any] = {}

    def remembered(self, source, name=None, filename=None, raw=False, defer_init=False):
        key = (type(self), source, name, filename, raw, defer_init)
        if key not in compiled:
            compiled[key] = compile_template(self, source, name, filename, raw, defer_init)
        return compiled[key]

    monkeypatch.setattr(jinja2.Environment, "compile", remembered)
    from copier import _main, _template

    for module in (_main, _template):
        monkeypatch.setattr(module, "is_git_available", lambda: False, raising=False)

    load = getattr(_template, "load_template_config", None)
    if load is not None:
        loaded: dict[tuple, Any] = {}

        def load_once(conf_path, *args, **kwargs):
            key = (str(conf_path), args, tuple(sorted(kwargs.items())))
            if key not in loaded:
                loaded[key] = load(conf_path, *args, **kwargs)
            return copy.deepcopy(loaded[key])

        monkeypatch.setattr(_template, "load_template_config", load_once)


def rendered(template: Path, dest: Path, answers: dict[str, Any]) -> dict[str, bytes]:
    """The files of a project rendered from the plain folder `template` (no
    git: nothing to clone), without tools/hooks/ (copied from hooks/, not
    rendered) and without the answers file's `_src_path` line."""
    copier.run_copy(str(template), str(dest), data=answers, defaults=True, unsafe=True,
                    skip_tasks=True, quiet=True, exclude=["tools"])  # fmt: skip
    result = files(dest)
    answers_file = result[".copier-answers.yml"].decode()
    result[".copier-answers.yml"] = "".join(
        line for line in answers_file.splitlines(keepends=True) if not line.startswith("_src_path:")
    ).encode()
    shutil.rmtree(dest)
    return result


def test_every_pyembed_answer_combination_renders_byte_for_byte_as_before_the_partials(
    tmp_path: Path, fast_renders: None
) -> None:
    if subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{BASE}^{{commit}}"],
                      capture_output=True, check=False).returncode:  # fmt: skip
        missing(f"this clone lacks commit {BASE[:10]} (a shallow clone?)")
    before = tmp_path / "before"
    git(tmp_path, "clone", "-q", "--shared", "--no-checkout", str(ROOT), str(before))
    git(before, "checkout", "-q", BASE)
    shutil.rmtree(before / ".git")
    after = working_tree(tmp_path / "after")

    checked = 0
    for answers in pyembed_answers():
        old = rendered(before, tmp_path / "project", answers)
        new = rendered(after, tmp_path / "project", answers)
        changed = sorted(name for name in old.keys() | new.keys() if old.get(name) != new.get(name))
        assert changed == [], f"{answers}: {changed}"
        checked += 1
    assert checked == 453


def shared_lines(name: str) -> int:
    """Lines of the two engines' templates of `name` that difflib matches in
    runs of three or more (a run of fewer is not shared text)."""
    pyo3, pyembed = (template_file(engine, name).read_text().splitlines() for engine in ENGINES)
    matcher = difflib.SequenceMatcher(None, pyo3, pyembed, autojunk=False)
    return sum(block.size for block in matcher.get_matching_blocks() if block.size >= 3)


@pytest.mark.parametrize("name", SHARED_FILES)
def test_the_engines_templates_share_at_most_15_lines_the_rest_is_in_partials(name: str) -> None:
    assert shared_lines(name) <= 15
    # Each template takes the shared text from its partial.
    for engine in ENGINES:
        text = template_file(engine, name).read_text()
        assert f'{{% import "partials/{name}.jinja" as shared with context %}}' in text
        assert "{{ shared." in text
