"""Command line of the hooks: `python3 tools/hooks {check,build,migrate,after-copy}`.

Exit status:
- `check` and `build` (run by hand, or by CI): 0 when all went well, 1 after
  a problem (one paragraph on stderr naming it and the fix), 130 when
  interrupted.
- `after-copy` (Copier's task): always 0. Copier deletes a project it has just
  created when a task fails, so a failed check or build would cost the user
  every generated file. The problem is printed instead, with the command that
  re-runs the step once it is fixed.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

# Only what `check` and `after-copy` (Copier's task, on every copy) need is
# imported here: the build's modules are imported by the functions that build,
# which keeps a copy about 30 ms faster.
from . import interpreter, migrate, toolenv
from .interpreter import PYO3_RULE, Candidate, Interpreter
from .project import PYOXIDIZER_TIMEOUT, Project
from .report import HookError, alongside, code, keep_files, note, problem, say, step

if TYPE_CHECKING:
    from .bundle import Bundle

INTERRUPTED = 130


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if toolenv.in_use() and not toolenv.building(sys.argv[1:] if argv is None else argv):
        say(f"Hook tools: {toolenv.describe()}.")  # the build says it in its own report
    try:
        return args.run(args)
    except HookError as error:
        problem(error)
        return 1
    except KeyboardInterrupt:
        print("\nInterrupted; the project's files are unchanged.", file=sys.stderr)
        return INTERRUPTED


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python3 tools/hooks",
        description="Check the Python the project links, and run its two-step build.",
    )
    commands = top.add_subparsers(required=True, metavar="COMMAND")

    def add(name: str, run: object, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(run=run)
        sub.add_argument(
            "--project", type=Path, default=Path.cwd(), help="the project (default: here)"
        )
        sub.add_argument(
            "--python", help="the interpreter to check instead of PyO3's choice (PYO3_PYTHON)"
        )
        return sub

    check_command = add(
        "check",
        run_check,
        "Find the Python the build will link, as PyO3 does, and check the engine can embed it.",
    )
    check_command.add_argument(
        "--target", help="Rust target triple (default: rustc's host); see build --target"
    )
    build = add(
        "build",
        run_build,
        "The two-step build: artifacts into target/out (the checked Python's runtime; "
        "pyembed: PyOxidizer's when it works), then cargo --release with "
        "build-mode-prebuilt-artifacts, then the relocatable folder dist/NAME and its archive.",
    )
    after_copy = add(
        "after-copy",
        run_after_copy,
        "Copier's task: the check, and the build when asked; never fails the copy.",
    )
    after_copy.add_argument("--build", action=argparse.BooleanOptionalAction, default=False)
    add(
        "check-answers",
        run_check_answers,
        "Check that .copier-answers.yml agrees with the project (a pre-commit hook).",
    )
    run = add(
        "run",
        run_dev,
        "The development loop: install the app's dependencies (python/pyproject.toml, "
        "--requirements) into target/dev when they change, cargo build, then run "
        "target/debug/NAME ARGS, which imports the app from python/ as it is now.",
    )
    run.add_argument(
        "--requirements",
        type=Path,
        metavar="FILE",
        help="more Python packages, as the build installs them (pip's format)",
    )
    run.add_argument(
        "args",
        nargs=argparse.REMAINDER,
        metavar="ARGS",
        help="the program's arguments (after --, if the first starts with -)",
    )
    migrate_command = add(
        "migrate",
        run_migrate,
        "Copier's migrations: move .cargo/config into .cargo/config.toml.",
    )
    migrate_command.add_argument(
        "--before-update",
        action="store_true",
        help="only save what the update could delete (Copier's `before` stage)",
    )
    for sub in (build, after_copy):
        sub.add_argument(
            "--debug", action="store_true", help="build the dev profile instead of release"
        )
        sub.add_argument(
            "--requirements",
            type=Path,
            metavar="FILE",
            help="install these Python packages into the program's lib/ (pip, with the "
            "checked Python)",
        )
        sub.add_argument(
            "--portable",
            action="store_true",
            help="also carry the system libraries the program needs (OpenSSL, SQLite, zlib, "
            "...), all but the C library (glibc) and libgcc_s",
        )
        sub.add_argument(
            "--target",
            help="Rust target triple (default: rustc's host), a Linux one such as "
            "aarch64-unknown-linux-gnu; from another CPU, PYO3_CROSS_LIB_DIR names the "
            "target's Python (README: Other targets)",
        )
        if sub is build:
            sub.add_argument(
                "--onefile",
                action="store_true",
                help="make one executable, dist/NAME-VERSION-TARGET, that carries its Python "
                "inside (pyo3 engine, Linux; a static libpython)",
            )
        sub.add_argument(
            "--artifacts",
            choices=["auto", "pyoxidizer", "local"],
            default="auto",
            help="auto: PyOxidizer when it works, else local (default)",
        )
        sub.add_argument(
            "--pyoxidizer-timeout",
            type=float,
            default=None,
            metavar="SECONDS",
            help=f"stop pyoxidizer after this long (default: $PYOXIDIZER_TIMEOUT, else "
            f"{PYOXIDIZER_TIMEOUT:.0f})",
        )
    return top


def run_check(args: argparse.Namespace) -> int:
    from . import cargo

    project = Project.at(args.project)
    pointer_width, cross = None, None
    try:
        target = cargo.target(args.target)
        pointer_width, cross = target.pointer_width, target.triple if target.cross else None
    except HookError:
        if args.target:
            raise
        note("rustc is not available, so the pointer width was not compared.")
    check(project, args.python, pointer_width, cross)
    return 0


def check(
    project: Project,
    python_path: str | None,
    pointer_width: int | None,
    cross: str | None = None,
    quiet: bool = False,
) -> Interpreter:
    """Report the interpreter PyO3 will pick and why (unless `quiet`); raise
    if it cannot be embedded. `cross` is the target triple of a cross build,
    whose Python is the target's."""
    support = project.support
    with step("Checking the Python the build will link", quiet):
        if cross:
            if python_path:
                raise HookError(
                    f"--python names a Python of this machine, and the build is for {cross}.",
                    "Leave --python out: " + interpreter.CROSS_FIX,
                )
            candidate = interpreter.find_cross(cross)
        elif python_path:
            candidate = Candidate(python_path, "--python was given")
        else:
            candidate = interpreter.find()
        try:
            python = interpreter.probe(candidate)
        except HookError as error:
            if cross:
                raise
            alternatives = interpreter.installed(support)
            raise HookError(error.problem, interpreter.fix_text(support, alternatives)) from None
        rule = "PyO3's rule for cross builds" if cross else PYO3_RULE
        if not quiet:
            say(f"Python: {python.describe}, chosen because {candidate.reason} ({rule}).")
        if interpreter.problems(python, support, pointer_width):
            alternatives = () if cross else interpreter.installed(support)
            interpreter.vet(python, support, pointer_width, alternatives)
        library = python.libpython()
        if cross:
            how = f", for {cross}: the two-step build carries a copy."
        else:
            how = ", which build.rs finds at run time through an rpath." if python.shared else "."
        if not quiet:
            say(
                f"It links {library}{how} {support.name} supports CPython {support.python_range}: "
                "good."
            )
    return python


def run_dev(args: argparse.Namespace) -> int:
    """`tools/hooks run ARGS`: the debug program with the app's dependencies,
    as cargo builds it (standalone: the Python PyO3 finds), run from here."""
    from . import cargo, packages

    project = Project.at(args.project)
    python = check(project, args.python, None, quiet=True)
    app = packages.app_folder(project.root)
    dev = project.root / "target" / "dev"
    site_packages = dev / "site-packages"
    requirements = args.requirements
    if packages.install(
        site_packages, python, app, requirements, str(site_packages), dev / packages.STAMP,
        live_app=True,
    ):  # fmt: skip
        note(f"Installed the app's dependencies for development into {site_packages}.")
    features = cargo.prebuilt_features(
        cargo.package(project)["features"].get("default", []),
        sys.platform == "win32",
        "build-mode-standalone",
    )
    binary = cargo.build(project, None, features, None, release=False)
    program_args = args.args[1:] if args.args[:1] == ["--"] else args.args
    try:
        return subprocess.run([str(binary), *program_args], check=False).returncode
    except OSError as error:
        raise HookError(
            f"{binary} cannot be run ({error.strerror or error}).",
            "Check that cargo built it for this machine.",
        ) from error


def run_check_answers(args: argparse.Namespace) -> int:
    """The answers file is Copier's: the project was rendered from it. A
    hand-edited answer leaves the two disagreeing, and the next `copier update`
    would re-render the project from an answer nobody applied."""
    project = Project.at(args.project)
    fix = (
        "Restore .copier-answers.yml from version control, and change an answer with "
        "`copier update --trust --data NAME=VALUE` instead."
    )
    missing = [
        key for key in ("_commit", "_src_path", "project_name") if key not in project.answers
    ]
    if missing:
        raise HookError(f".copier-answers.yml lacks {', '.join(missing)}.", fix)
    from . import cargo

    package = cargo.package(project)
    if package["name"] != project.answers["project_name"]:
        raise HookError(
            f".copier-answers.yml says project_name={project.answers['project_name']}, but "
            f"Cargo.toml's package is {package['name']}.",
            fix,
        )
    project.support  # noqa: B018 (raises for an engine or pyembed_version it does not know)
    expected = project.default_features()
    actual = package["features"].get("default", [])
    if sorted(expected) != sorted(actual):
        raise HookError(
            f".copier-answers.yml's build_mode and allocators give the default features "
            f"{expected}, but Cargo.toml has {actual}.",
            fix + " (Or, if you changed Cargo.toml on purpose, run `copier update --trust "
            "--data NAME=VALUE` with the answers that match it.)",
        )
    say(".copier-answers.yml agrees with the project.")
    return 0


def run_build(args: argparse.Namespace) -> int:
    project = Project.at(args.project)
    binary = build(project, args)
    say(f"Built {binary}. Try it:")
    code(try_it(project, binary))
    return 0


def try_it(project: Project, binary: Path) -> str:
    """A command that runs the program as its run mode makes it: like
    `python` it takes -c; in the other modes every argument is the app's."""
    if project.answers.get("run_mode", "repl") == "repl":
        return f'{shlex.quote(str(binary))} -c "import sys; print(sys.version)"'
    return shlex.quote(str(binary))


def build(project: Project, args: argparse.Namespace) -> Path:
    """The two steps and the bundle; returns the bundled program."""
    from . import artifacts, bundle, cargo

    say(f"Build tools: {toolenv.describe()}.")
    target = cargo.target(args.target)
    if target.os != "linux":
        raise HookError(
            f"The two-step build makes relocatable Linux programs, and {target.triple} is "
            f"not a Linux target.",
            f"Build for it with cargo itself: `cargo build --release --target {target.triple}` "
            "(from Linux for Windows, with PYO3_CROSS_PYTHON_VERSION=3.X: the README's "
            '"Other targets").',
        )
    if target.cross and project.engine == "pyembed":
        raise HookError(
            f"The pyembed engine's two-step build is for this machine's CPU, not {target.triple}.",
            "Build on such a machine, or move the project to the pyo3 engine, which builds for "
            "it from here: `copier update --trust --data engine=pyo3`.",
        )
    if target.cross and getattr(args, "onefile", False):
        raise HookError(
            f"--onefile builds for this machine's CPU only, not {target.triple}: it runs the "
            "checked Python and links its static libpython with this machine's C compiler.",
            f"Leave --onefile out for the relocatable folder for {target.triple}, or build the "
            "one file on such a machine (the release workflow's aarch64 runner).",
        )
    python: Interpreter | None = None
    try:
        python = check(
            project, args.python, target.pointer_width, target.triple if target.cross else None
        )
    except HookError as error:
        if (
            project.engine != "pyembed"
            or args.artifacts == "local"
            or not artifacts.pyoxidizer_exe()
        ):
            raise
        problem(error)
        note("PyOxidizer brings its own Python, so the build goes on without this one.")
    if getattr(args, "onefile", False):
        from . import onefile

        return onefile.build(project, args, python, target)
    profile = "debug" if args.debug else "release"
    with step("Step 1 of 2: artifacts for build-mode-prebuilt-artifacts"):
        timeout = args.pyoxidizer_timeout or pyoxidizer_timeout()
        made = artifacts.produce(
            project, python, target.triple, profile, args.artifacts, timeout, args.requirements,
            defer=True,
        )  # fmt: skip
        say(f"Artifacts ({made.provider}) are in {made.directory}.")
    with step("Step 2 of 2: cargo build"):
        package = cargo.package(project)
        features = cargo.prebuilt_features(package["features"].get("default", []), target.windows)
        say(f"Features: {' '.join(features)}")
        linker = cargo.linker_environment(target, project)
        environment = {**made.environment, **linker}
        say("Environment: " + " ".join(f"{k}={v}" for k, v in environment.items()))
        binary = alongside(
            made.rest,
            lambda: cargo.build(project, made, features, args.target, not args.debug, linker),
        )
    with step("The relocatable program"):
        result = bundle.assemble(
            project,
            binary,
            made.runtime_lib,
            package["version"],
            target.triple,
            args.portable,
            python.sysroot if python else None,
            python.base_prefix if python and not python.sysroot else None,
        )
        report_bundle(result, target.triple)
    return result.folder / binary.name


def report_bundle(result: Bundle, triple: str) -> None:
    say(
        f"{result.folder} ({result.folder_mib:.1f} MiB, for {triple}) runs wherever it is "
        f"moved; {result.archive} ({result.archive_mib:.1f} MiB) is the same, to attach to a "
        "release."
    )
    if result.copied:
        say(
            f"--portable: carries {', '.join(result.copied)}; expects only the C library "
            "(glibc) and libgcc_s from the system."
        )
    if result.needs:
        say("It needs these libraries from the target system:")
        code(
            "\n".join(
                f"{name}  (for {', '.join(users[:3])})" for name, users in result.needs.items()
            )
        )
        if not result.copied:
            say("`python3 tools/hooks build --portable` carries them too.")
    else:
        say("It needs nothing from the target system beyond the C library.")
    if result.names:
        note("These files of it name this machine's folders, and may fail where those are missing:")
        code("\n".join(f"{name}  ({', '.join(held)})" for name, held in result.names.items()))
    else:
        say(
            f"No file of it names {' or '.join(result.searched)} (read as bytes, as `grep -r` "
            "does); libpython may name its Python's prefix, CPython's compiled-in default, "
            "which the program does not use: it sets Python's home."
        )


def run_migrate(args: argparse.Namespace) -> int:
    root = Project.at(args.project).root
    if args.before_update:
        migrate.save_cargo_config(root)
    else:
        migrate.cargo_config(root)
    return 0


def copier_scratch_copy(project: Path) -> bool:
    """During `copier update`, Copier also renders the old and the new template
    version into scratch folders and runs the tasks there too (Copier issue
    1422); checking or building those would only cost time."""
    return any(
        re.match(r"copier[._a-z]*\.(old|new)_copy\.", part) for part in project.resolve().parts
    )


def pyoxidizer_timeout() -> float:
    value = os.environ.get("PYOXIDIZER_TIMEOUT", "")
    try:
        return float(value) if value else PYOXIDIZER_TIMEOUT
    except ValueError:
        raise HookError(
            f"PYOXIDIZER_TIMEOUT is {value!r}, not a number of seconds.",
            "Set it to a number, such as 600, or unset it.",
        ) from None


def run_after_copy(args: argparse.Namespace) -> int:
    if copier_scratch_copy(args.project):
        return 0
    try:
        project = Project.at(args.project)
        # Copying over a project made by `pyoxidizer init-rust-project` leaves its
        # .cargo/config beside ours, and Cargo would read that one.
        migrate.cargo_config(project.root)
        if args.build:
            binary = build(project, args)
            say(f"Built {binary}.")
        else:
            check(project, args.python, None)
    except HookError as error:
        problem(error)
        rerun = "build" if args.build else "check"
        keep_files(args.project, f"python3 tools/hooks {rerun}")
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        keep_files(args.project, "python3 tools/hooks build")
    except Exception as error:  # a bug in the hook must not cost the project either
        print(f"error: the hook failed unexpectedly: {error!r}", file=sys.stderr)
        keep_files(args.project, "python3 tools/hooks check")
    return 0
