"""How the hooks talk to the user: step headers, notes, and problems.

A problem is one paragraph that names what is wrong and the fix. Paths and
commands are never broken across lines, so they can be copied.
"""

from __future__ import annotations

import os
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

WIDTH = 79


class HookError(Exception):
    """A problem the user can fix: what is wrong, then what to do."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem} {fix}")
        self.problem = problem
        self.fix = fix


def last_line(out: str, err: str, limit: int = 300) -> str:
    """What a failed command said last (its stderr, else its stdout), cut to
    `limit` characters: the line that usually names the cause. Empty when it
    printed nothing."""
    said = (err or out).strip().splitlines()
    return said[-1].strip()[:limit] if said else ""


def paragraph(text: str, prefix: str = "") -> str:
    return textwrap.fill(
        " ".join(text.split()),
        width=WIDTH,
        initial_indent=prefix,
        subsequent_indent=" " * len(prefix),
        break_long_words=False,
        break_on_hyphens=False,
    )


def say(text: str = "") -> None:
    print(paragraph(text) if text else "", flush=True)


def note(text: str) -> None:
    print(paragraph(text, "note: "), flush=True)


def problem(error: HookError) -> None:
    print(paragraph(str(error), "error: "), file=sys.stderr, flush=True)


def code(lines: str) -> None:
    """Commands to copy, indented and never wrapped."""
    print(textwrap.indent(textwrap.dedent(lines).strip("\n"), "    "), flush=True)


@contextmanager
def step(title: str, quiet: bool = False) -> Iterator[None]:
    """A header before a step and its duration after it (neither if `quiet`)."""
    if quiet:
        yield
        return
    print(f"\n==> {title}", flush=True)
    start = time.monotonic()
    try:
        yield
    finally:
        print(f"==> {title}: {time.monotonic() - start:.1f} s", flush=True)


def keep_files(project: Path, command: str) -> None:
    """After a failed `after-copy` step, which exits 0 all the same: Copier
    deletes a new project when a task fails."""
    say()
    say(
        f"The project's files are all in place in {project}; only this step failed. "
        "Once the problem above is fixed, re-run it from the project's folder:"
    )
    code(f"cd {os.fspath(project)}\n{command}")
