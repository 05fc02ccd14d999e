"""Development sessions: `nox -s NAME`. Each one is a single job.

- lint: ruff check and format check.
- tests: the whole pytest suite, end-to-end cargo builds included.
- fast: the tests that need no cargo build (seconds).
- e2e: only the end-to-end tests (copier, cargo, the built binary).
- newest_pythons: only the tests in the Debian sid root (CPython 3.14, 3.15).
- oldest_copier: the fast tests with copier.yml's _min_copier_version.
- demo: generate, build and run a demo project from this template.
- bench: the benchmark table (not part of the tests); `-- --json FILE`.
- lock: re-resolve the shipped Cargo.lock against today's crates.io.
- release: check CHANGELOG.md and the working tree, then tag a version locally.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")

nox.options.sessions = ["lint", "tests"]


def install(session: nox.Session, group: str = "test") -> None:
    session.install(*nox.project.dependency_groups(PYPROJECT, group))


@nox.session
def lint(session: nox.Session) -> None:
    install(session, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def tests(session: nox.Session) -> None:
    install(session)
    session.run("pytest", *session.posargs)


@nox.session
def fast(session: nox.Session) -> None:
    install(session)
    session.run("pytest", "-m", "not e2e", *session.posargs)


@nox.session
def e2e(session: nox.Session) -> None:
    install(session)
    session.run("pytest", "-m", "e2e", *session.posargs)


@nox.session
def newest_pythons(session: nox.Session) -> None:
    """The pyo3 engine's end-to-end tests with CPython 3.14 and 3.15, inside a
    Debian sid root made once and reused (tests/sidroot.py)."""
    install(session)
    session.run("pytest", "-m", "sid", *session.posargs)


@nox.session
def oldest_copier(session: nox.Session) -> None:
    """The fast tests with the oldest Copier that copier.yml admits."""
    install(session)
    found = re.search(r'^_min_copier_version: "([^"]+)"', (ROOT / "copier.yml").read_text(), re.M)
    session.install(f"copier=={found.group(1)}")
    session.run("pytest", "-m", "not e2e", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """Generate a project into ./demo-project, build it with cargo and run it."""
    install(session)
    dest = Path(session.posargs[0] if session.posargs else ROOT / "demo-project")
    if dest.exists():
        session.error(f"{dest} exists; remove it or give another folder: nox -s demo -- DIR")
    env = {}
    if not os.environ.get("PYO3_PYTHON"):
        # The Python on PATH may be one the default engine cannot embed: pick
        # the newest installed one it can, as `python3 tools/hooks check` would.
        found = session.run("python", "-c", PICK_PYTHON, silent=True, env={"PYTHONPATH": str(ROOT)})
        if found and found.strip():
            env["PYO3_PYTHON"] = found.strip()
            session.log(f"Linking {env['PYO3_PYTHON']}")
    session.run(
        "copier", "copy", "--trust", "--defaults", "--vcs-ref=HEAD",
        "--data", "project_name=demo", str(ROOT), str(dest), env=env,
    )  # fmt: skip
    with session.chdir(dest):
        session.run("cargo", "build", "--locked", external=True, env=env)
    code = "import json, sqlite3, ssl, sys; print('Hello from Python', sys.version.split()[0])"
    target_dir = Path(os.environ.get("CARGO_TARGET_DIR") or dest / "target")
    session.run(str(target_dir / "debug" / "demo"), "-c", code, external=True)
    session.log(f"The demo project is in {dest}; its README.md says what next.")


PICK_PYTHON = """
from hooks import interpreter, project
support = project.newest(project.support_table()["pyo3"])
try:
    chosen = interpreter.probe(interpreter.find())
    ok = not interpreter.problems(chosen, support, None)
except Exception:
    ok = False
if not ok:
    found = interpreter.installed(support)
    print(found[0].executable if found else "")
"""


@nox.session
def bench(session: nox.Session) -> None:
    install(session, "bench")
    session.run("python", str(ROOT / "tests" / "bench.py"), *session.posargs)


@nox.session
def lock(session: nox.Session) -> None:
    """Regenerate each engine's Cargo.lock template from a fresh `cargo generate-lockfile`."""
    install(session)
    support = ROOT / "hooks" / "support.yml"
    for engine in ENGINES:
        with tempfile.TemporaryDirectory() as tmp:
            project = Path(tmp) / "project"
            session.run(
                "copier", "copy", "--trust", "--defaults", "--skip-tasks", "--vcs-ref=HEAD",
                "--data", f"project_name={LOCK_ROOT}", "--data", f"engine={engine}",
                str(ROOT), str(project),
            )  # fmt: skip
            session.run("cargo", "generate-lockfile", "--manifest-path",
                        str(project / "Cargo.toml"), external=True)  # fmt: skip
            text = (project / "Cargo.lock").read_text()
        template, crates = lock_template(text)
        (ROOT / "template" / lock_file_name(engine)).write_text(template)
        support.write_text(set_lock_crates(support.read_text(), engine, crates))
        session.log(f"{lock_file_name(engine)} written: {len(crates)} crates.")
    session.log("Run the tests.")


ENGINES = ("pyo3", "pyembed")


def lock_file_name(engine: str) -> str:
    return f"{{% if engine == '{engine}' %}}Cargo.lock{{% endif %}}.jinja"


def set_lock_crates(support_yml: str, engine: str, crates: list[str]) -> str:
    """support.yml with the engine's `lock_crates:` line (the first after the
    engine's own key) listing `crates`, comments and layout kept."""
    engine_key = re.search(rf"(?m)^    {engine}:$", support_yml)
    line = re.compile(r"(?m)^(\s+lock_crates: ).*$").search(support_yml, engine_key.end())
    return (
        support_yml[: line.start()]
        + line.group(1)
        + "["
        + ", ".join(crates)
        + "]"
        + support_yml[line.end() :]
    )


LOCK_ROOT = "lock-root-placeholder"
LOCK_PACKAGE = "\n[[package]]\n"


def lock_template(lock: str) -> tuple[str, list[str]]:
    """Turn a Cargo.lock into a template that places the project's own package
    where Cargo sorts it, so the first `cargo build` leaves the file unchanged.
    The other packages are one raw block, split and joined again when the
    template renders: Jinja compiles that three to five times faster than a
    macro call per package, and Copier compiles it on every copy."""
    head, *blocks = lock.split(LOCK_PACKAGE)
    root = next(b for b in blocks if b.startswith(f'name = "{LOCK_ROOT}"\n'))
    blocks.remove(root)
    names = [re.match(r'name = "([^"]+)"', b).group(1) for b in blocks]
    separator = LOCK_PACKAGE.replace("\n", "\\n")
    template = "".join(
        [
            "{#- Generated by `nox -s lock` from `cargo generate-lockfile`. Cargo sorts\n"
            "    packages by name: the project's own entry goes where its name sorts,\n"
            '    after every block that starts with a smaller `name = "..."` line. -#}\n',
            "{%- set own -%}\n",
            root.replace(LOCK_ROOT, "{{ project_name }}"),
            "{% endset -%}\n",
            "{%- set lock %}{% raw %}",
            LOCK_PACKAGE.join([head, *blocks]),
            "{% endraw %}{% endset -%}\n",
            f'{{%- set parts = lock.split("{separator}") -%}}\n',
            "{%- set at = 1 + parts[1:] | select(\"lt\", 'name = \"' ~ project_name ~ '\"')"
            " | list | length -%}\n",
            f'{{{{ (parts[:at] + [own] + parts[at:]) | join("{separator}") }}}}',
        ]
    )
    return template, sorted(set(names))


@nox.session(python=False)
def release(session: nox.Session) -> None:
    """`nox -s release -- vX.Y.Z`: the annotated tag of a template version,
    made locally after checking that CHANGELOG.md has a `## vX.Y.Z` section
    (not "unreleased") and that the working tree is clean. Push it yourself:
    `git push origin vX.Y.Z`."""
    if len(session.posargs) != 1 or not re.fullmatch(r"v\d+\.\d+\.\d+", session.posargs[0]):
        session.error("Give the version to tag: nox -s release -- vMAJOR.MINOR.PATCH")
    version = session.posargs[0]
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    heading = re.search(rf"(?m)^## {re.escape(version)}(.*)$", changelog)
    if not heading:
        session.error(f"CHANGELOG.md has no '## {version}' section: write it first.")
    if heading.group(1).strip():
        session.error(f"CHANGELOG.md's heading for {version} says {heading.group(1).strip()!r}: "
                      f"make it '## {version}' when the version is final.")  # fmt: skip
    status = session.run("git", "status", "--porcelain", external=True, silent=True)
    if status.strip():
        session.error("The working tree has uncommitted changes: commit them first.")
    session.run("git", "tag", "-a", version, "-m", f"Template {version}", external=True)
    session.log(f"Tagged {version}. Publish it with: git push origin {version}")


if __name__ == "__main__":  # `python noxfile.py` behaves like `nox`
    sys.exit(subprocess.call([sys.executable, "-m", "nox", *sys.argv[1:]], cwd=os.fspath(ROOT)))
