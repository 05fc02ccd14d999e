"""report.alongside: the build makes the runtime (and the one file's payload)
while cargo compiles, and still reports each in one piece."""

from __future__ import annotations

import threading

import pytest

from hooks import report
from hooks.report import HookError


def test_work_alongside_cargo_runs_at_the_same_time_and_is_reported_after_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    started = threading.Event()

    def background() -> None:
        started.set()
        report.say("The runtime is made.")

    def foreground() -> int:
        print("cargo: Compiling", flush=True)
        # Only a background running at the same time can set it.
        assert started.wait(timeout=10)
        print("cargo: Finished", flush=True)
        return 7

    assert report.alongside(background, foreground) == 7
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["cargo: Compiling", "cargo: Finished", "The runtime is made."]


def test_without_work_alongside_the_foreground_runs_alone() -> None:
    assert report.alongside(None, lambda: "built") == "built"


def test_a_failure_alongside_is_raised_once_cargo_has_finished(
    capsys: pytest.CaptureFixture[str],
) -> None:
    finished = []

    def background() -> None:
        report.say("Installing the app.")
        raise HookError("pip could not install the app.", "Fix its pyproject.toml.")

    def foreground() -> None:
        finished.append(True)

    with pytest.raises(HookError, match="pip could not install the app"):
        report.alongside(background, foreground)
    assert finished == [True]
    assert "Installing the app." in capsys.readouterr().out


def test_when_cargo_and_the_work_alongside_both_fail_each_says_why(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def background() -> None:
        raise HookError("pip could not install the app.", "Fix its pyproject.toml.")

    def foreground() -> None:
        raise HookError("cargo build failed.", "Fix what it names.")

    with pytest.raises(HookError, match="cargo build failed"):
        report.alongside(background, foreground)
    assert "error: pip could not install the app." in capsys.readouterr().err


def test_a_ctrl_c_during_cargo_waits_for_the_work_alongside_and_adds_no_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    done = []

    def background() -> None:
        done.append(True)
        raise HookError("pip was interrupted.", "Run the build again.")

    def foreground() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        report.alongside(background, foreground)
    assert done == [True]
    assert "pip was interrupted" not in capsys.readouterr().err
