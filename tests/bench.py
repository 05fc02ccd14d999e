"""Benchmark this template (its default engine, pyo3) against
`pyoxidizer init-rust-project` and plain `python3`.

Run it as `nox -s bench` (add `-- --json out.json` to keep the figures, or
`-- --quick` for a short development run). It is a script, not a test: pytest
does not collect it and no test times anything.

In one run it measures, each as the median of several runs after a warm-up
(with min and max), alternating the two sides so that background load hits
both alike:

1. Generate: `copier copy --trust --defaults` of this template (its
   post-generation hook included, no build) vs the same command on a one-file
   Copier template with one trivial list-form task (what any Copier template
   costs), and `pyoxidizer --system-rust init-rust-project`: both for
   information, without a target (the 1.25x one is retired).
2. Cold build: `cargo build` of this template's project (pyo3 engine) and of
   PyOxidizer's, each with an empty target directory and a warm crate cache.
3. Incremental build after touching src/main.rs.
4. Start-up: `NAME -I -S -c pass` and `NAME -c pass` vs the same arguments to
   the python the program links: wall time and peak memory.
5. Binary size, debug and release.
6. The relocatable program of `python3 tools/hooks build`: its archive's size,
   the time of a second build with nothing changed (run by a Python without
   the hooks' packages, so it reuses the tool environment the first build
   made; the project holds its app, python/, and each second build must say
   it installed nothing), and its start-up `-c pass` against `python3 -c pass`.
7. One file (issue 22), for a script that imports json, sqlite3, ssl, decimal
   and asyncio: `tools/hooks build --onefile --portable` against PyInstaller 6
   `--onefile` of the same script (in a venv of the same Python): start-up
   against `python3 app.py` and against PyInstaller's file, size, and cold
   build time, ours (folder and one file) against PyInstaller's `--onedir`
   and `--onefile`.

It prints a Markdown table (ratios are ours / theirs, so lower is better, with
PASS or MISS against the issue's targets), the machine, and a profile of where
the cold builds spend their time; `--json FILE` writes the same figures.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from plumbum import local

ROOT = Path(__file__).resolve().parent.parent  # the template repository
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
}
NAME = "benchapp"  # project name on both sides
NOT_REINSTALLED = "since the last build: not installed again."
# A start-up row with a target takes this many times --startup-runs: a ~15 ms
# start-up on a shared 2-core machine varies by several ms from run to run, so
# a median of 300 runs still moves by ~1%, as much as the margin of a ≤ 1.02
# target.
TARGET_RUNS = 5
MIB = 1024 * 1024
BASELINE = "PyOxidizer's project"

# The targets (issue 9).
COLD_BUILD_RATIO = 0.5
STARTUP_RATIO = 1.02
BUNDLED_STARTUP_RATIO = 1.0
REBUILD_SECONDS = 5.0  # issue 11
# Issue 22: the one file against python3 and PyInstaller 6.
ONEFILE_STARTUP_RATIO = 1.10
ONEFILE_PYINSTALLER_STARTUP_RATIO = 0.5
ONEFILE_SIZE_RATIO = 1.0
COLD_PACKAGE_RATIO = 1.0
APP_SCRIPT = "import json, sqlite3, ssl, decimal, asyncio\n"
PYINSTALLER = "pyinstaller>=6,<7"
# The smallest Copier template with a task: what copier copy costs anyway.
TRIVIAL_TEMPLATE = {
    "copier.yml": (
        "_tasks:\n"
        '  - command: ["{{ _copier_python }}", "-c", "pass"]\n'
        "project_name:\n"
        "  type: str\n"
        "  default: app\n"
    ),
    "README.md.jinja": "# {{ project_name }}\n",
}


# ---- Running and timing commands ----


@dataclass
class Run:
    """One finished child process."""

    seconds: float
    cpu_seconds: float  # user + system time of the child and all it waited for
    peak_kib: int  # the child's peak resident set size
    code: int
    output: str  # stdout and stderr together

    def first_error(self) -> str:
        """The line that says what went wrong, for a table cell."""
        lines = [line.strip() for line in self.output.splitlines() if line.strip()]
        for line in lines:
            if line.startswith("error"):
                return line
        return lines[-1] if lines else f"exit status {self.code}"


class CommandFailed(Exception):
    def __init__(self, argv: Sequence[str], run: Run) -> None:
        super().__init__(f"`{' '.join(argv)}` failed ({run.code}): {run.first_error()}")
        self.run = run


def run_measured(
    argv: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> Run:
    """Run a command, timing its wall clock and reading its own resource use.

    os.wait4 returns the rusage of exactly this child (RUSAGE_CHILDREN would
    mix every child so far), so peak memory and CPU time are per run; the CPU
    time includes the child's own children (cargo's rustc processes). Output
    goes to a file, not a pipe, so a chatty child cannot block while we wait.
    """
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # wait4 reaped it, not Popen
        out.seek(0)
        output = out.read().decode(errors="replace")
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    peak_kib = usage.ru_maxrss // 1024 if sys.platform == "darwin" else usage.ru_maxrss
    cpu_seconds = usage.ru_utime + usage.ru_stime
    return Run(seconds, cpu_seconds, peak_kib, proc.returncode, output)


def checked(argv: Sequence[str], **kwargs: Any) -> Run:
    run = run_measured(argv, **kwargs)
    if run.code != 0:
        raise CommandFailed(argv, run)
    return run


Side = Callable[[], Run]  # one measured run of one side (it prepares and cleans up itself)


def alternate(
    ours: Side, theirs: Side | None, runs: int, warmup: int
) -> tuple[list[Run], list[Run]]:
    """Warm-up runs, then `runs` measured runs of each side, taking turns so
    that any drift in background load affects both sides alike. Without a
    baseline (it failed to build), only our side runs."""
    sides = [ours] if theirs is None else [ours, theirs]
    for _ in range(warmup):
        for side in sides:
            side()
    results: tuple[list[Run], list[Run]] = ([], [])
    for _ in range(runs):
        for side, result in zip(sides, results):
            result.append(side())
    return results


# ---- Figures and the table ----


@dataclass
class Stats:
    median: float
    min: float
    max: float
    runs: list[float]

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        return cls(statistics.median(values), min(values), max(values), list(values))


@dataclass
class Row:
    """One line of the table: our figure against the baseline's."""

    measure: str
    unit: str  # "s" or "MiB"
    baseline: str  # what we compare with
    ours: Stats | None
    theirs: Stats | None = None
    failure: str = ""  # why the baseline (or ours) has no figure
    target: str = ""  # "ratio ≤ 0.9", "ours ≤ 1.5 s" or ""
    ratio: float | None = None
    met: bool | None = None
    miss: str = ""  # by how much the target is missed

    def __post_init__(self) -> None:
        if self.ours and self.theirs and self.theirs.median:
            self.ratio = self.ours.median / self.theirs.median


def check_ratio(row: Row, limit: float) -> Row:
    row.target = f"ratio ≤ {limit:g}"
    if row.ratio is not None:
        row.met = row.ratio <= limit
        if not row.met:
            row.miss = f"{(row.ratio / limit - 1) * 100:.0f}% over"
    return row


def check_at_most(row: Row, limit: float) -> Row:
    """A target on our figure alone (a row with no baseline)."""
    row.target = f"ours ≤ {limit:g} {row.unit}"
    if row.ours is not None:
        row.met = row.ours.median <= limit
        if not row.met:
            row.miss = f"{(row.ours.median / limit - 1) * 100:.0f}% over"
    return row


def cell(stats: Stats | None, unit: str) -> str:
    if stats is None:
        return "—"
    digits = 1 if unit == "MiB" else 2 if stats.median >= 1 else 3
    if stats.min == stats.max:  # a single run, or a size
        return f"{stats.median:.{digits}f} {unit}"
    return f"{stats.median:.{digits}f} {unit} ({stats.min:.{digits}f}-{stats.max:.{digits}f})"


def markdown_table(rows: Sequence[Row]) -> str:
    lines = [
        "| Measure | This template | Baseline | Ratio | Target | Result |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        failed = f"**fails**: {row.failure}"
        # Only one side has a failure to show; the other shows its figure or "—".
        ours = failed if row.failure and not row.ours else cell(row.ours, row.unit)
        theirs_failed = row.failure and row.ours and not row.theirs
        theirs = failed if theirs_failed else cell(row.theirs, row.unit)
        ratio = f"{row.ratio:.2f}" if row.ratio is not None else "—"
        result = "—" if row.met is None else "PASS" if row.met else f"**MISS**, {row.miss}"
        # A figure with no baseline (a size) shows none.
        baseline = f"{row.baseline}: {theirs}" if row.theirs or theirs_failed else row.baseline
        lines.append(
            f"| {row.measure} | {ours} | {baseline} | {ratio} | {row.target or '—'} | {result} |"
        )
    return "\n".join(lines)


# ---- The machine and the tools ----


def tool(name: str) -> str:
    """A console script installed next to the running Python (the nox session's
    venv, or the pyenv version's bin), else the one on PATH. Preferring the
    real file over a pyenv shim keeps ~50 ms of bash out of the timings."""
    here = Path(sys.executable).parent
    found = shutil.which(name, path=os.pathsep.join([str(here), os.environ.get("PATH", "")]))
    if not found:
        sys.exit(f"error: `{name}` is not installed; `nox -s bench` installs it.")
    return found


def linked_python(explicit: str | None) -> tuple[str, str]:
    """The interpreter the build links, as PyO3 picks it (PYO3_PYTHON, else an
    active virtualenv, else python, then python3 on PATH), resolved to the real
    executable behind any pyenv shim or virtualenv: that executable is the
    `python3 -c pass` baseline and what PYO3_PYTHON is set to for both builds.
    Returns (path, version)."""
    candidates = [explicit or os.environ.get("PYO3_PYTHON", "")]
    if os.environ.get("VIRTUAL_ENV"):
        candidates.append(str(Path(os.environ["VIRTUAL_ENV"]) / "bin" / "python"))
    candidates += ["python", "python3"]
    probe = (
        "import os, sys; "
        "base = getattr(sys, '_base_executable', '') or sys.executable; "
        "print(os.path.realpath(base)); print(sys.version.split()[0])"
    )
    for candidate in filter(None, candidates):
        path = shutil.which(candidate)
        if not path:
            continue
        try:
            out = local[path]("-c", probe).split()
        except Exception:  # noqa: S112 (PyO3 also skips one that does not run)
            continue
        return out[0], out[1]
    sys.exit("error: no Python found for the build (set PYO3_PYTHON).")


def version_of(argv: Sequence[str]) -> str:
    try:
        return local[argv[0]](*argv[1:]).strip().splitlines()[0]
    except Exception as error:  # a missing version is only a note
        return f"unknown ({error})"


def machine(python: str, python_version: str, copier: str, pyoxidizer: str) -> dict[str, Any]:
    cpu_model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M)
        cpu_model = found.group(1).strip() if found else ""
    git = local["git"]["-C", str(ROOT)]
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "os": platform.platform(),
        "rustc": version_of(["rustc", "--version"]),
        "cargo": version_of(["cargo", "--version"]),
        "python": python_version,
        "python_executable": python,
        "copier": version_of([copier, "--version"]),
        "pyoxidizer": version_of([pyoxidizer, "--version"]),
        "template_commit": git("rev-parse", "--short", "HEAD").strip(),
        # --vcs-ref=HEAD renders uncommitted changes too, through an extra copy.
        "template_dirty": bool(git("status", "--porcelain").strip()),
        "load_average_before": os.getloadavg(),
    }


def machine_line(info: dict[str, Any]) -> str:
    dirty = " + uncommitted changes" if info["template_dirty"] else ""
    return (
        f"{info['cpus']} CPUs ({info['cpu_model'] or 'unknown model'}), {info['os']}; "
        f"{info['rustc']}; {info['cargo']}; Python {info['python']} "
        f"({info['python_executable']}); {info['copier']}; {info['pyoxidizer']}; "
        f"template {info['template_commit']}{dirty}; load average "
        f"{info['load_average_before'][0]:.2f} before, {info['load_average_after'][0]:.2f} after"
    )


# ---- The measurements ----


@dataclass
class Bench:
    work: Path
    env: dict[str, str]  # for every child: PYO3_PYTHON set, no compiler cache
    python: str
    copier: str
    pyoxidizer: str
    runs: int
    cold_runs: int
    startup_runs: int
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    profile: dict[str, Any] = field(default_factory=dict)
    skip_tasks: bool = False
    counter: int = 0
    # Filled in as the steps run: the projects the builds use, the newest
    # target folder of each side, our binaries.
    ours_project: Path = Path()
    theirs_project: Path = Path()
    targets: dict[str, Path] = field(default_factory=dict)
    binaries: dict[str, Path] = field(default_factory=dict)
    # The newest cold one-file build of ours, and PyInstaller's dist folders.
    last_project: Path = Path()
    last_pyinstaller: dict[str, Path] = field(default_factory=dict)

    def fresh(self, label: str) -> Path:
        """A new, not yet existing path in the work folder."""
        self.counter += 1
        return self.work / f"{label}-{self.counter}"

    # -- 1. Generate --

    def copier_argv(self, dest: Path) -> list[str]:
        argv = [self.copier, "copy", "--trust", "--defaults", "--vcs-ref=HEAD"]
        if self.skip_tasks:
            argv.append("--skip-tasks")
        return [*argv, "--data", f"project_name={NAME}", str(ROOT), str(dest)]

    def generate_ours(self, keep: bool = False) -> Run:
        dest = self.fresh("ours")
        run = checked(self.copier_argv(dest), cwd=self.work, env=self.env)
        if keep:
            self.ours_project = dest
        else:
            shutil.rmtree(dest)
        return run

    def generate_theirs(self, keep: bool = False) -> Run:
        parent = self.fresh("theirs")
        parent.mkdir()
        argv = [self.pyoxidizer, "--system-rust", "init-rust-project", NAME]
        run = checked(argv, cwd=parent, env=self.env)
        if keep:
            self.theirs_project = parent / NAME
        else:
            shutil.rmtree(parent)
        return run

    def check_tasks(self) -> None:
        """The copy must include the post-generation hook; if the hook cannot
        run yet, measure without it and say so loudly."""
        try:
            self.generate_ours()
        except CommandFailed as error:
            self.skip_tasks = True
            self.generate_ours()
            self.notes.append(
                "**Generate ran with --skip-tasks**: `copier copy --trust` failed with its "
                f"post-generation task ({error.run.first_error()}), so the figure leaves out "
                "the interpreter check."
            )
            print(f"WARNING: measuring with --skip-tasks: {error}", file=sys.stderr)

    def trivial_template(self) -> Path:
        """TRIVIAL_TEMPLATE as a git repository, made once."""
        repo = self.work / "trivial-template"
        if not repo.exists():
            repo.mkdir()
            for name, text in TRIVIAL_TEMPLATE.items():
                (repo / name).write_text(text)
            for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "t"]):
                checked(["git", *args], cwd=repo, env={**self.env, **GIT_IDENTITY})
        return repo

    def generate_trivial(self) -> Run:
        dest = self.fresh("trivial")
        argv = [self.copier, "copy", "--trust", "--defaults", "--vcs-ref=HEAD"]
        run = checked([*argv, str(self.trivial_template()), str(dest)], cwd=self.work, env=self.env)
        shutil.rmtree(dest)
        return run

    def generate(self) -> None:
        step(f"Generate: copier copy of this template vs a one-file one ({self.runs} runs each)")
        self.check_tasks()
        ours, theirs = alternate(self.generate_ours, self.generate_trivial, self.runs, warmup=1)
        # For information: its 1.25x target is retired (a template this size
        # costs Copier more than a one-file one, whatever its tasks do).
        row = Row(
            "Generate, `copier copy` (wall), for information",
            "s",
            "a one-file template with one list-form task",
            Stats.of([r.seconds for r in ours]),
            Stats.of([r.seconds for r in theirs]),
        )
        self.rows.append(row)
        _, pyoxidizer = alternate(self.generate_ours, self.generate_theirs, 3, warmup=0)
        self.rows.append(
            Row(
                "Generate, against PyOxidizer, for information (wall)",
                "s",
                "`pyoxidizer init-rust-project`",
                Stats.of([r.seconds for r in ours]),
                Stats.of([r.seconds for r in pyoxidizer]),
            )
        )
        # The projects the builds use, made by the very commands measured above.
        self.generate_ours(keep=True)
        self.generate_theirs(keep=True)

    # -- 2. and 3. Builds --

    def cargo(self, project: Path, target: Path, *args: str, timings: bool = False) -> Run:
        argv = ["cargo", "build", *args] + (["--timings"] if timings else [])
        return run_measured(argv, cwd=project, env={**self.env, "CARGO_TARGET_DIR": str(target)})

    def warm_up_build(self, label: str, project: Path) -> Run:
        """Fill the crate cache (`cargo fetch`), then one untimed cold build
        with --timings: it proves the project builds and gives the profile."""
        checked(["cargo", "fetch"], cwd=project, env={**self.env, "CARGO_NET_OFFLINE": "false"})
        target = self.fresh(f"target-{label}")
        run = self.cargo(project, target, timings=True)
        if run.code == 0:
            self.profile[label] = crate_times(target / "cargo-timings" / "cargo-timing.html")
            self.profile[label]["wall_seconds"] = round(run.seconds, 2)
        shutil.rmtree(target, ignore_errors=True)
        return run

    def cold(self, label: str, project: Path) -> Side:
        def side() -> Run:
            target = self.fresh(f"target-{label}")
            run = self.cargo(project, target)
            if run.code != 0:
                raise CommandFailed(["cargo", "build"], run)
            # Keep the newest target folder for the incremental builds and sizes.
            previous = self.targets.get(label)
            if previous:
                shutil.rmtree(previous, ignore_errors=True)
            self.targets[label] = target
            return run

        return side

    def incremental(self, label: str, project: Path) -> Side:
        def side() -> Run:
            # A new mtime makes cargo rebuild the crate, as an edit would.
            (project / "src" / "main.rs").touch()
            run = self.cargo(project, self.targets[label])
            if run.code != 0:
                raise CommandFailed(["cargo", "build"], run)
            return run

        return side

    def builds(self) -> None:
        step("Cold build: cargo fetch, then one untimed cold build each (--timings profile)")
        run = self.warm_up_build("ours", self.ours_project)
        if run.code != 0:
            raise CommandFailed(["cargo", "build"], run)
        run = self.warm_up_build("pyoxidizer", self.theirs_project)
        failure = "" if run.code == 0 else run.first_error()
        if failure:
            print(f"PyOxidizer's project does not build: {failure}", file=sys.stderr)

        step(f"Cold build: {self.cold_runs} runs each, empty target folder every time")
        theirs = None if failure else self.cold("pyoxidizer", self.theirs_project)
        runs = alternate(self.cold("ours", self.ours_project), theirs, self.cold_runs, warmup=0)
        wall, cpu = build_rows("Cold build, `cargo build`", *runs, failure)
        self.rows += [check_ratio(wall, COLD_BUILD_RATIO), cpu]

        step(f"Incremental build after touching src/main.rs: {self.runs} runs each")
        theirs = None if failure else self.incremental("pyoxidizer", self.theirs_project)
        runs = alternate(self.incremental("ours", self.ours_project), theirs, self.runs, warmup=1)
        self.rows += build_rows("Incremental build after touching `src/main.rs`", *runs, failure)

        step("Release build of each project (untimed; for the binary size)")
        self.sizes(failure)

    def sizes(self, theirs_failure: str) -> None:
        """Binary sizes, debug (from the newest cold build) and release."""
        failures = {"pyoxidizer": theirs_failure} if theirs_failure else {}
        projects = {"ours": self.ours_project, "pyoxidizer": self.theirs_project}
        for label, target in self.targets.items():
            run = self.cargo(projects[label], target, "--release")
            if run.code != 0:
                failures[label] = run.first_error()
        for profile in ("debug", "release"):
            sizes = [self.binary_size(label, profile) for label in ("ours", "pyoxidizer")]
            failure = failures.get("ours") or failures.get("pyoxidizer", "")
            self.rows.append(
                Row(f"Binary size, {profile}", "MiB", BASELINE, *sizes, failure=failure)
            )
            self.binaries[profile] = self.targets["ours"] / profile / NAME

    def binary_size(self, label: str, profile: str) -> Stats | None:
        binary = self.targets.get(label, Path("-")) / profile / NAME
        return Stats.of([binary.stat().st_size / MIB]) if binary.exists() else None

    # -- 4. Start-up --

    def startup(self) -> None:
        step(
            f"Start-up: `{NAME} ARGS` vs `python ARGS` ({self.startup_runs} runs each, "
            f"{self.startup_runs * TARGET_RUNS} for a row with a target)"
        )
        # The target is for the binary one ships; the others are shown as well.
        wall, memory = self.startup_rows(
            "release", ["-I", "-S", "-c", "pass"], self.startup_runs * TARGET_RUNS
        )
        self.rows += [check_ratio(wall, STARTUP_RATIO), memory]
        self.rows += self.startup_rows("release", ["-c", "pass"])
        self.rows += self.startup_rows("debug", ["-c", "pass"])
        self.profile["startup_modules"] = self.startup_modules()

    # -- 6. The relocatable program --

    def bundle(self) -> None:
        step("The relocatable program: python3 tools/hooks build, then start-up")
        # Run by a Python without the hooks' packages (a fresh venv of the
        # linked one), as most users' python3 is: the first build makes the
        # tool environment (untimed), the second ones reuse it.
        hooks_python = self.work / "hooks-python"
        checked([self.python, "-m", "venv", "--without-pip", str(hooks_python)], env=self.env)
        hooks = [str(hooks_python / "bin" / "python"), "tools/hooks", "build"]
        env = {**self.env, "RUST_EMBEDDED_PYTHON_TOOLS": str(self.work / "tools")}
        run = run_measured(hooks, cwd=self.ours_project, env=env)
        if run.code != 0:
            failure = run.first_error()
            self.rows.append(Row("Relocatable program, archive size", "MiB", "—", None,
                                 failure=failure))  # fmt: skip
            return
        dist = self.ours_project / "dist"
        (archive,) = dist.glob(f"{NAME}-*.tar.gz")
        self.rows.append(
            Row("Relocatable program, archive size (tar.gz)", "MiB", "— (no baseline)",
                Stats.of([archive.stat().st_size / MIB]), None)
        )  # fmt: skip
        # Issue 11: a second build with nothing changed takes under 5 s (the
        # e2e test checks that it recompiles nothing; time is measured here).
        if "Build tools: from the tool environment" not in run.output:
            self.notes.append("**The bundle rows did not use the tool environment.**")
        # Issue 21: the project holds its app (python/), and a build with
        # nothing changed installs nothing: each second build must say so.
        again = [run_measured(hooks, cwd=self.ours_project, env=env) for _ in range(self.runs)]
        failed = next((run for run in again if run.code != 0), None)
        failure = failed.first_error() if failed else ""
        if not failed and not all(NOT_REINSTALLED in " ".join(run.output.split()) for run in again):
            failed = again[0]
            failure = f"a second build installed the app again (no {NOT_REINSTALLED!r})"
        self.rows.append(
            check_at_most(
                Row("Second `tools/hooks build`, app unchanged: installs nothing (wall)", "s",
                    "— (no baseline)",
                    None if failed else Stats.of([run.seconds for run in again]), None,
                    failure=failure),
                REBUILD_SECONDS,
            )
        )  # fmt: skip
        self.binaries["bundled"] = dist / NAME / NAME
        wall, memory = self.startup_rows("bundled", ["-c", "pass"], self.startup_runs * TARGET_RUNS)
        self.rows += [check_ratio(wall, BUNDLED_STARTUP_RATIO), memory]

    # -- 7. One file, against PyInstaller --

    def pyinstaller(self) -> str:
        """PyInstaller in a venv of the linked Python (made once)."""
        venv = self.work / "pyinstaller-venv"
        if not venv.exists():
            checked([self.python, "-m", "venv", str(venv)], env=self.env)
            checked([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                     PYINSTALLER], env=self.env)  # fmt: skip
        return str(venv / "bin" / "pyinstaller")

    def fresh_project(self) -> Path:
        """A copy of our project without its build output: a cold build."""
        copy = self.fresh("cold-ours")
        shutil.copytree(self.ours_project, copy, ignore=shutil.ignore_patterns("target", "dist"))
        return copy

    def ours_cold(self, *options: str) -> Side:
        def side() -> Run:
            project = self.fresh_project()
            run = checked([sys.executable, "tools/hooks", "build", *options], cwd=project,
                          env=self.env)  # fmt: skip
            self.last_project = project
            return run

        return side

    def pyinstaller_cold(self, pyinstaller: str, script: Path, mode: str) -> Side:
        def side() -> Run:
            where = self.fresh(f"pyinstaller{mode}")
            env = {**self.env, "PYINSTALLER_CONFIG_DIR": str(where / "config")}  # no cache
            run = checked(
                [pyinstaller, mode, "--noconfirm", "--log-level", "WARN",
                 "--distpath", str(where / "dist"), "--workpath", str(where / "work"),
                 "--specpath", str(where), "--name", NAME, str(script)],
                cwd=where.parent, env=env,
            )  # fmt: skip
            self.last_pyinstaller[mode] = where / "dist"
            return run

        return side

    def onefile(self) -> None:
        step("One file: tools/hooks build --onefile --portable against PyInstaller 6")
        script = self.work / "app.py"
        script.write_text(APP_SCRIPT)
        try:
            pyinstaller = self.pyinstaller()
        except CommandFailed as error:
            self.rows.append(Row("One file against PyInstaller", "s", "PyInstaller 6", None,
                                 failure=f"PyInstaller did not install: {error}"))  # fmt: skip
            return
        for label, options, mode in (
            ("the folder (`tools/hooks build --portable`)", ["--portable"], "--onedir"),
            ("the one file (`--onefile --portable`)", ["--onefile", "--portable"], "--onefile"),
        ):
            step(f"Cold build of {label} against PyInstaller {mode}: {self.cold_runs} runs each")
            ours, theirs = alternate(self.ours_cold(*options),
                                     self.pyinstaller_cold(pyinstaller, script, mode),
                                     self.cold_runs, warmup=0)  # fmt: skip
            row = Row(
                f"Cold build of {label} (wall)",
                "s",
                f"PyInstaller 6 `{mode}`",
                Stats.of([r.seconds for r in ours]),
                Stats.of([r.seconds for r in theirs]),
            )
            self.rows.append(check_ratio(row, COLD_PACKAGE_RATIO))  # fmt: skip
        (ours_file,) = (self.last_project / "dist").glob(f"{NAME}-*-*")
        theirs_file = self.last_pyinstaller["--onefile"] / NAME
        self.rows.append(check_ratio(
            Row("One file, size", "MiB", "PyInstaller 6 `--onefile`",
                Stats.of([ours_file.stat().st_size / MIB]),
                Stats.of([theirs_file.stat().st_size / MIB])),
            ONEFILE_SIZE_RATIO,
        ))  # fmt: skip
        step(f"Start-up of the one file: {self.startup_runs} runs against python3 app.py")
        ours, theirs = alternate(
            functools.partial(checked, [str(ours_file), str(script)], env=self.env),
            functools.partial(checked, [self.python, str(script)], env=self.env),
            self.startup_runs, warmup=3,
        )  # fmt: skip
        self.rows.append(check_ratio(
            Row("One file, start-up `NAME app.py` (wall)", "s", "`python3 app.py`",
                Stats.of([r.seconds for r in ours]), Stats.of([r.seconds for r in theirs])),
            ONEFILE_STARTUP_RATIO,
        ))  # fmt: skip
        runs = max(self.runs * 3, 10)
        step(f"Start-up of the one file: {runs} runs against PyInstaller's")
        ours, theirs = alternate(
            functools.partial(checked, [str(ours_file), str(script)], env=self.env),
            functools.partial(checked, [str(theirs_file)], env=self.env),
            runs, warmup=2,
        )  # fmt: skip
        self.rows.append(check_ratio(
            Row("One file, start-up of the script (wall)", "s", "PyInstaller 6 `--onefile`",
                Stats.of([r.seconds for r in ours]), Stats.of([r.seconds for r in theirs])),
            ONEFILE_PYINSTALLER_STARTUP_RATIO,
        ))  # fmt: skip

    def startup_rows(
        self, profile: str, args: list[str], runs: int | None = None
    ) -> tuple[Row, Row]:
        """Wall time and peak memory of `NAME ARGS` against `python ARGS` of
        the very interpreter NAME links."""
        binary = [str(self.binaries[profile]), *args]
        python = [self.python, *args]
        shown = " ".join(args)
        measure = f"Start-up `{NAME} {shown}`, {profile}"
        baseline = f"`python3 {shown}`"
        probe = run_measured(binary, env=self.env)
        if probe.code != 0:
            failure = probe.first_error()
            return (
                Row(f"{measure} (wall)", "s", baseline, None, failure=failure),
                Row(f"{measure} (peak memory)", "MiB", baseline, None, failure=failure),
            )
        ours, theirs = alternate(
            functools.partial(run_measured, binary, env=self.env),
            functools.partial(run_measured, python, env=self.env),
            runs or self.startup_runs,
            warmup=3,
        )
        return (
            Row(
                f"{measure} (wall)",
                "s",
                baseline,
                Stats.of([r.seconds for r in ours]),
                Stats.of([r.seconds for r in theirs]),
            ),
            Row(
                f"{measure} (peak memory)",
                "MiB",
                baseline,
                Stats.of([r.peak_kib / 1024 for r in ours]),
                Stats.of([r.peak_kib / 1024 for r in theirs]),
            ),
        )

    def startup_modules(self) -> dict[str, int]:
        """Modules imported by start-up on each side: unequal counts would
        explain an unequal start-up time."""
        code = "import sys; print(len(sys.modules))"
        counts = {}
        for label, argv in (("ours", [str(self.binaries["release"])]), ("python", [self.python])):
            run = run_measured([*argv, "-c", code], env=self.env)
            if run.code == 0:
                counts[label] = int(run.output.split()[-1])
        return counts


def build_rows(measure: str, ours: list[Run], theirs: list[Run], failure: str) -> tuple[Row, Row]:
    """The wall-time row, which the targets name, and the CPU-time row: user +
    system time of cargo and every rustc, which other load on the machine
    disturbs much less than the wall clock."""

    def stats(runs: list[Run], cpu: bool) -> Stats | None:
        return Stats.of([r.cpu_seconds if cpu else r.seconds for r in runs]) if runs else None

    return (
        Row(f"{measure} (wall)", "s", BASELINE, stats(ours, False), stats(theirs, False), failure),
        Row(f"{measure} (CPU)", "s", BASELINE, stats(ours, True), stats(theirs, True), failure),
    )


def crate_times(html_file: Path) -> dict[str, Any]:
    """Seconds per crate (compiling it, its build script and running that)
    from cargo's --timings report, whose data is a JSON array in the page."""
    found = re.search(r"const UNIT_DATA = (\[.*?\n\]);", html_file.read_text(), re.S)
    if not found:
        return {}
    per_crate: dict[str, float] = {}
    for unit in json.loads(found.group(1)):
        key = f"{unit['name']} {unit['version']}"
        per_crate[key] = per_crate.get(key, 0.0) + unit["duration"]
    ranked = sorted(per_crate.items(), key=lambda item: -item[1])
    return {
        "crates": len(per_crate),
        "crate_seconds_total": round(sum(per_crate.values()), 2),
        "crate_seconds": {name: round(seconds, 2) for name, seconds in ranked},
    }


def profile_text(profile: dict[str, Any]) -> str:
    """Where the cold builds spend their time, and start-up module counts."""
    lines = []
    for label in ("ours", "pyoxidizer"):
        data = profile.get(label)
        if not data:
            continue
        top = list(data["crate_seconds"].items())[:8]
        lines.append(
            f"- {label}: {data['crates']} crates, {data['crate_seconds_total']:.1f} s of "
            f"compile units in {data['wall_seconds']:.1f} s wall; slowest: "
            + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in top)
        )
    if profile.get("ours") and profile.get("pyoxidizer"):
        ours = {name.split()[0] for name in profile["ours"]["crate_seconds"]}
        theirs = {name.split()[0] for name in profile["pyoxidizer"]["crate_seconds"]}
        ours.discard(NAME)
        theirs.discard(NAME)
        lines.append(f"- only ours compiles: {', '.join(sorted(ours - theirs)) or 'none'}")
        lines.append(f"- only PyOxidizer's compiles: {', '.join(sorted(theirs - ours)) or 'none'}")
    modules = profile.get("startup_modules")
    if modules:
        lines.append(
            "- modules imported at start-up: "
            + ", ".join(f"{label} {count}" for label, count in modules.items())
        )
    return "\n".join(lines)


def step(text: str) -> None:
    print(f"==> {text}", file=sys.stderr, flush=True)


# ---- Command line ----


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="nox -s bench --",
        description="Benchmark this template against `pyoxidizer init-rust-project`.",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="development run: 1 cold build, 3 generate and incremental runs, 10 start-ups",
    )
    parser.add_argument("--runs", type=int, default=10, help="generate and incremental runs")
    parser.add_argument("--cold-runs", type=int, default=5, help="cold builds of each project")
    parser.add_argument("--startup-runs", type=int, default=300, help="start-up runs")
    parser.add_argument("--python", help="the Python to link (default: PyO3's choice)")
    parser.add_argument("--keep", type=Path, help="work in this new folder and keep it")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.cold_runs, args.startup_runs = 3, 1, 10
    return args


def child_env(python: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYO3_PYTHON"] = python  # both projects (and copier's hook) see one Python
    env["CARGO_NET_OFFLINE"] = "true"  # timed builds never wait on the network
    # A compiler cache would turn a cold build into a warm one.
    for name in ("RUSTC_WRAPPER", "CARGO_BUILD_RUSTC_WRAPPER", "CARGO_TARGET_DIR"):
        env.pop(name, None)
    return env


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    python, python_version = linked_python(args.python)
    copier, pyoxidizer = tool("copier"), tool("pyoxidizer")
    info = machine(python, python_version, copier, pyoxidizer)
    if args.keep:
        args.keep.mkdir(parents=True)
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-"))
    bench = Bench(
        work.resolve(),
        child_env(python),
        python,
        copier,
        pyoxidizer,
        args.runs,
        args.cold_runs,
        args.startup_runs,
    )
    try:
        bench.generate()
        bench.builds()
        bench.startup()
        bench.bundle()
        bench.onefile()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    info["load_average_after"] = os.getloadavg()

    command = "nox -s bench" + (" -- " + " ".join(sys.argv[1:]) if sys.argv[1:] else "")
    print()
    print(markdown_table(bench.rows))
    print()
    print(f"Machine: {machine_line(info)}.")
    print(
        f"Runs: median (min-max) of {args.runs} (generate, incremental), {args.cold_runs} "
        f"(cold build), {args.startup_runs} (start-up; {args.startup_runs * TARGET_RUNS} for "
        f"a row with a target) after a warm-up; command: `{command}`."
    )
    for note in bench.notes:
        print(f"\n{note}")
    print("\nWhere the time goes (cold build with `cargo build --timings`, untimed):\n")
    print(profile_text(bench.profile))

    if args.json:
        figures = {
            "command": command,
            "machine": info,
            "settings": {
                "runs": args.runs,
                "cold_runs": args.cold_runs,
                "startup_runs": args.startup_runs,
                "skip_tasks": bench.skip_tasks,
                "quick": args.quick,
            },
            "rows": [asdict(row) for row in bench.rows],
            "notes": bench.notes,
            "profile": bench.profile,
        }
        args.json.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n")
        print(f"\nFigures written to {args.json}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
