"""How the hooks talk to the user: step headers, notes, and problems.

A problem is one paragraph that names what is wrong and the fix. Paths and
commands are never broken across lines, so they can be copied.
"""

from __future__ import annotations

import io
import os
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO, TypeVar

T = TypeVar("T")

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


# What a thread running `alongside` says, kept until the main work is done.
_held = threading.local()


def out() -> TextIO:
    """Where the hooks' messages go: standard output, or the buffer of a
    thread run `alongside`."""
    return getattr(_held, "buffer", None) or sys.stdout


def say(text: str = "") -> None:
    print(paragraph(text) if text else "", file=out(), flush=True)


def note(text: str) -> None:
    print(paragraph(text, "note: "), file=out(), flush=True)


def problem(error: HookError) -> None:
    print(paragraph(str(error), "error: "), file=sys.stderr, flush=True)


def code(lines: str) -> None:
    """Commands to copy, indented and never wrapped."""
    print(textwrap.indent(textwrap.dedent(lines).strip("\n"), "    "), file=out(), flush=True)


@contextmanager
def step(title: str, quiet: bool = False) -> Iterator[None]:
    """A header before a step and its duration after it (neither if `quiet`)."""
    if quiet:
        yield
        return
    print(f"\n==> {title}", file=out(), flush=True)
    start = time.monotonic()
    try:
        yield
    finally:
        print(f"==> {title}: {time.monotonic() - start:.1f} s", file=out(), flush=True)


def alongside(background: Callable[[], object] | None, foreground: Callable[[], T]) -> T:
    """`foreground()` (cargo) here while `background()` (work that does not
    need its result) runs in a thread; returns what `foreground` returns.
    What `background` says is printed after `foreground` ends, so that
    cargo's lines stay together; its error is raised then (when both fail,
    it is shown and the foreground's raised). Neither side may change the
    process's working folder or environment (plumbum's `local.cwd` and
    `local.env`): they would change the other's."""
    if background is None:
        return foreground()
    buffer = io.StringIO()
    failed: list[BaseException] = []

    def work() -> None:
        _held.buffer = buffer
        try:
            background()
        except BaseException as error:  # raised in the main thread, below
            failed.append(error)

    thread = threading.Thread(target=work, name="alongside")
    thread.start()
    try:
        result = foreground()
    except BaseException as error:
        thread.join()  # a Ctrl-C stops its commands too
        print(buffer.getvalue(), end="", flush=True)
        if isinstance(error, HookError) and failed and isinstance(failed[0], HookError):
            problem(failed[0])  # both failed: each says why
        raise
    thread.join()
    print(buffer.getvalue(), end="", flush=True)
    if failed:
        raise failed[0]
    return result


def keep_files(project: Path, command: str) -> None:
    """After a failed `after-copy` step, which exits 0 all the same: Copier
    deletes a new project when a task fails."""
    say()
    say(
        f"The project's files are all in place in {project}; only this step failed. "
        "Once the problem above is fixed, re-run it from the project's folder:"
    )
    code(f"cd {os.fspath(project)}\n{command}")
