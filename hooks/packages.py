"""The application and the Python packages it needs, installed into the
runtime the program carries (`lib/python3.X/site-packages`) as they are now.

- The application: the project's `python/` folder (its pyproject.toml names
  the package and its dependencies), installed by pip as a regular package,
  never editable, so the bundle carries a copy of its code.
- `--requirements FILE`: more packages, in pip's requirements format. It is
  read with pip-requirements-parser (pip's own parsing code): an editable
  line (`-e PATH`, `--editable`) is refused, since what it installs points at
  a folder of this machine, and a local path that does not exist is named as
  it was resolved. Relative paths are read from the requirements file's
  folder, as the user reads them: pip runs there.

Installed again whenever what it is made from changes: the interpreter, the
text of every requirements file (nested `-r` files too) and every file of
the local folders they install (the application's included), each known by
a content hash (blake2b; 68 ms for pip's own 991-file source tree, 5 ms for
click's). Otherwise nothing runs: pip is not even started.

After pip, nothing names this machine: the `.pyc` files record their source
as a path inside the bundle (`lib/python3.X/site-packages/...`), scripts
(`bin/`, whose first line is this machine's Python) are left out, and the
`direct_url.json` of a package installed from a local folder (its
`file://` URL) is removed.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from plumbum import local
from plumbum.commands.base import BaseCommand

from . import runtime
from .interpreter import Interpreter
from .report import HookError, last_line

# The folder of the project that holds the application's Python package.
APP_HOME = "python"
STAMP = ".packages.json"
# Not part of what a local folder installs: version control, caches, and
# what building it writes into it (setuptools' build/, dist/, *.egg-info).
SKIPPED_ANYWHERE = ("__pycache__",)
SKIPPED_AT_TOP = ("build", "dist")
PIP_TIMEOUT = 1800


@dataclass
class Sources:
    """What an installation is made from: files read as a whole (requirements
    files) and local folders or files that pip installs."""

    requirements: list[Path] = field(default_factory=list)
    local: list[Path] = field(default_factory=list)

    def fingerprint(self, python: Interpreter) -> dict[str, object]:
        return {
            "python": python.executable,
            "version": list(python.version),
            "requirements": {str(path): content_hash(path) for path in self.requirements},
            "local": {str(path): content_hash(path) for path in self.local},
        }


def app_folder(project_root: Path) -> Path | None:
    """The project's application (APP_HOME with a pyproject.toml), if it has one."""
    folder = project_root / APP_HOME
    return folder if (folder / "pyproject.toml").is_file() else None


def install(
    site_packages: Path,
    python: Interpreter,
    app: Path | None,
    requirements: Path | None,
    recorded_as: str,
    stamp: Path,
    live_app: bool = False,
) -> bool:
    """Make `site_packages` hold `app` and the packages of `requirements`
    (either may be None) as they are now; `recorded_as` is the folder's path
    inside the bundle, which the .pyc files record. With `live_app` (the
    development loop, where the program imports the app from its source
    folder), only a change to the app's pyproject.toml installs it again.
    Returns whether pip ran."""
    if app is None and requirements is None:
        if site_packages.exists():
            shutil.rmtree(site_packages)
        stamp.unlink(missing_ok=True)
        return False
    given = inputs(app, requirements, live_app)
    if unchanged(stamp, python, given):
        return False
    sources = Sources()
    if requirements is not None:
        sources = read_requirements(requirements)
    if app is not None and live_app:
        sources.requirements.insert(0, app / "pyproject.toml")
    elif app is not None:
        sources.local.insert(0, app)
    made_from = {**sources.fingerprint(python), "given": given}
    stamp.unlink(missing_ok=True)  # an interrupted install is never taken for done
    if site_packages.exists():
        shutil.rmtree(site_packages)
    run_pip(python, site_packages, app, requirements)
    clean(site_packages)
    runtime.compile_tree(python, site_packages, recorded_as, sourceless=False)
    stamp.write_text(json.dumps(made_from, sort_keys=True), encoding="utf-8")
    return True


def inputs(app: Path | None, requirements: Path | None, live_app: bool) -> dict[str, object]:
    """What an installation was asked for: the app, the requirements file
    given (another file, or none, is another installation) and the mode."""
    return {
        "app": str(app.resolve()) if app else None,
        "requirements": str(requirements.resolve()) if requirements else None,
        "live_app": live_app,
    }


def unchanged(stamp: Path, python: Interpreter, given: dict[str, object]) -> bool:
    """Whether the last installation was asked for the same (`given`, from
    `inputs`) and its sources are all as they were: the requirements are not
    even parsed again."""
    try:
        last = json.loads(stamp.read_text(encoding="utf-8"))
        sources = Sources(
            [Path(path) for path in last["requirements"]], [Path(path) for path in last["local"]]
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return {**sources.fingerprint(python), "given": given} == last


def read_requirements(file: Path) -> Sources:
    """The requirements files (`file` and those it includes) and the local
    paths they install, resolved from `file`'s folder; refuses editable lines
    and local paths that do not exist."""
    try:
        from pip_requirements_parser import RequirementsFile
    except ImportError:
        raise HookError(
            f"pip-requirements-parser is needed to read {file}, and {sys.executable} lacks it.",
            runtime.AGAIN,
        ) from None
    file = file.resolve()
    if not file.is_file():
        raise HookError(
            f"The requirements file {file} does not exist.",
            "Give an existing file with --requirements FILE.",
        )
    folder = file.parent
    try:
        # pip reads nested files relative to the including file, and local
        # paths relative to where it runs: the top file's folder.
        with local.cwd(folder):
            parsed = RequirementsFile.from_file(str(file), include_nested=True)
    except Exception as error:  # the parser raises pip's own exception types
        raise HookError(
            f"Cannot read the requirements file {file}: {error}.",
            "Fix the file (pip's requirements format), then run the build again.",
        ) from error
    if parsed.invalid_lines:
        bad = parsed.invalid_lines[0]
        raise HookError(
            f"{where(bad.filename, folder, bad.line_number)}: `{bad.line}` is not a "
            f"requirement pip understands ({bad.error_message}).",
            "Fix that line (pip's requirements format), then run the build again.",
        )
    sources = Sources(requirements=[file])
    for option in parsed.options:
        for name in ("requirements", "constraints"):
            for nested in option.options.get(name, []):
                including = folder / option.requirement_line.filename
                sources.requirements.append((including.parent / nested).resolve())
    for requirement in parsed.requirements:
        line = where(requirement.filename, folder, requirement.line_number)
        path = local_path(requirement, folder)
        if requirement.is_editable:
            shown = f" ({path})" if path else ""
            raise HookError(
                f"{line}: `{requirement.line}` is editable{shown}, and the program "
                "cannot carry an editable install: it points at this machine's folder.",
                "Remove the -e (--editable): every build installs the folder's current "
                "code as a regular package.",
            )
        if path is None:
            continue
        if not path.exists():
            raise HookError(
                f"{line}: `{requirement.line}` names {path}, which does not exist.",
                f"Relative paths are read from the requirements file's folder ({folder}); "
                "correct the path, then run the build again.",
            )
        sources.local.append(path)
    return sources


def where(filename: str, folder: Path, line_number: int | None) -> str:
    """FILE:LINE of a requirements line, as the user would open it: relative
    to the current folder when it is inside it."""
    path = (folder / filename).resolve()
    with contextlib.suppress(ValueError):
        path = path.relative_to(Path.cwd().resolve())
    return f"{path}:{line_number}" if line_number else str(path)


def local_path(requirement: object, folder: Path) -> Path | None:
    """The local folder or file a requirement installs, resolved from
    `folder`; None for one from an index or a remote URL."""
    link = getattr(requirement, "link", None)
    if link is not None and link.is_file:
        return Path(link.file_path).resolve()
    if getattr(requirement, "is_local_path", False):
        text = link.url if link is not None else str(getattr(requirement, "name", ""))
        text = text.split("#", 1)[0]
        if text.startswith("file:"):
            text = text[len("file:") :]
        return (folder / text).resolve()
    return None


def content_hash(path: Path) -> str:
    """blake2b of a file's bytes, or of a folder's files (names and bytes, in
    order, but what SKIPPED_* names); "missing" when it does not exist."""
    digest = hashlib.blake2b(digest_size=16)
    try:
        if path.is_file():
            digest.update(path.read_bytes())
            return digest.hexdigest()
        if not path.is_dir():
            return "missing"
        for file in files_of(path):
            digest.update(str(file.relative_to(path)).encode("utf-8", "surrogateescape") + b"\0")
            digest.update(hashlib.blake2b(file.read_bytes(), digest_size=16).digest())
    except OSError:
        return "unreadable"
    return digest.hexdigest()


def files_of(folder: Path) -> Iterator[Path]:
    """The files of a local folder that an install reads, in a stable order."""
    for directory, folders, names in os.walk(folder):
        top = Path(directory) == folder
        folders[:] = sorted(
            name
            for name in folders
            if not name.startswith(".")
            and name not in SKIPPED_ANYWHERE
            and not name.endswith(".egg-info")
            and not (top and name in SKIPPED_AT_TOP)
        )
        for name in sorted(names):
            if not name.endswith((".pyc", ".pyo")):
                yield Path(directory) / name


def run_pip(
    python: Interpreter, site_packages: Path, app: Path | None, requirements: Path | None
) -> None:
    """pip install --target, from the requirements file's folder (so its
    relative paths mean what they say), without compiling (compile_tree does,
    with paths inside the bundle). For a target's Python run under an
    emulator, which cannot start itself again to build a package, this
    Python's pip builds the app's wheel first, and the target's Python
    installs wheels only."""
    what: list[str] = []
    if requirements is not None:
        what += ["--requirement", str(requirements.resolve())]
    folder = requirements.resolve().parent if requirements is not None else Path.cwd()
    with tempfile.TemporaryDirectory(prefix="app-wheel-") as wheels:
        if app is not None and python.emulated:
            pip_run(
                local[sys.executable]["-m", "pip"],
                ["wheel", "--no-deps", "--no-input", "--disable-pip-version-check",
                 "--wheel-dir", wheels, str(app.resolve())],
                python, app, None, folder,
            )  # fmt: skip
            what += [str(wheel) for wheel in Path(wheels).glob("*.whl")]
            what.append("--only-binary=:all:")
        elif app is not None:
            what.append(str(app.resolve()))
        pip_run(
            pip_for(python),
            ["install", "--no-input", "--disable-pip-version-check", "--no-compile",
             "--target", str(site_packages.resolve()), *what],
            python, app, requirements, folder,
        )  # fmt: skip


def pip_run(
    pip: BaseCommand,
    args: list[str],
    python: Interpreter,
    app: Path | None,
    requirements: Path | None,
    folder: Path,
) -> None:
    # Run from `folder` without changing this process's: cargo may be running
    # from another (report.alongside).
    code, out, err = pip[args].run(retcode=None, timeout=PIP_TIMEOUT, cwd=str(folder))
    if code != 0:
        said = last_line(out, err)
        named = " and ".join(
            str(path) for path in (requirements, app and app / "pyproject.toml") if path
        )
        raise HookError(
            f"pip could not install {named} with {python.describe}"
            + (f": {said}" if said else "."),
            "Fix the requirements (or install pip for that Python: python3 -m ensurepip), "
            "then run the build again.",
        )


def pip_for(python: Interpreter) -> BaseCommand:
    """pip for the vetted interpreter: its own; or, when it has none (Debian's
    python3 without python3-pip, a target's python3-minimal), this Python's
    pip (22.3 or later) run for it: with `--python`, or for a target's
    Python under its emulator, pip's own runner script run by that Python
    (pip is pure Python: it installs with that interpreter's tags)."""
    found = python.command()[
        "-S", "-c", "import importlib.util as u, sys; sys.exit(u.find_spec('pip') is None)"
    ].run(retcode=None, timeout=PIP_TIMEOUT)[0]
    if found == 0:
        return python.command()["-m", "pip"]
    try:
        import pip
    except ImportError:
        pip = None
    version = getattr(pip, "__version__", "0")
    recent = tuple(int(part) for part in version.split(".")[:2] if part.isdigit()) >= (22, 3)
    if pip is not None and recent:
        if python.emulated:
            return python.command()[str(Path(pip.__file__).parent / "__pip-runner__.py")]
        return local[sys.executable]["-m", "pip", "--python", python.executable]
    raise HookError(
        f"{python.describe} has no pip, which installs the app and its packages into the "
        "program (and neither has the Python running the hooks).",
        "Install pip for it (Debian and Ubuntu: sudo apt install python3-pip; elsewhere: "
        f"{python.executable} -m ensurepip), then run the build again.",
    )


def clean(site_packages: Path) -> None:
    """What pip left that names this machine: scripts (bin/, their first
    line is this machine's Python) and the direct_url.json of packages
    installed from a local folder (a file:// URL)."""
    shutil.rmtree(site_packages / "bin", ignore_errors=True)
    for direct_url in site_packages.glob("*.dist-info/direct_url.json"):
        try:
            url = json.loads(direct_url.read_text(encoding="utf-8")).get("url", "")
        except (OSError, ValueError):
            url = "file:"
        if url.startswith("file:"):
            direct_url.unlink()
            drop_from_record(direct_url.parent / "RECORD", direct_url.name)


def drop_from_record(record: Path, name: str) -> None:
    """The RECORD of a .dist-info folder without the line of its file `name`."""
    if not record.is_file():
        return
    with record.open(newline="", encoding="utf-8") as stream:
        rows = list(csv.reader(stream))
    kept = [row for row in rows if not (row and row[0].endswith("/" + name))]
    with record.open("w", newline="", encoding="utf-8") as stream:
        csv.writer(stream, lineterminator="\n").writerows(kept)
