"""The parity cases: command lines run side by side through a built program and
through the `python3` it links, compared on exit status and the bytes of
stdout and stderr (the two executables' paths made equal, and what a case is
known to print differently from run to run masked, such as object addresses).
Used by the end-to-end tests of both engines."""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pexpect

from .conftest import Place


@dataclass(frozen=True)
class Case:
    args: list[str]
    stdin: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # created in the working folder
    # What the case prints differently in every run, replaced by "..." in both.
    masks: tuple[re.Pattern[bytes], ...] = ()


ADDRESS = re.compile(rb"(?<= object at )0x[0-9a-f]+")  # in an object's repr
FLAGS = "import sys; print(sys.flags)"
PATHS = "import sys; print(sys.prefix, sys.base_prefix, sys.path[1:])"
CASES = {
    "version": Case(["--version"]),
    "V": Case(["-V"]),
    "VV": Case(["-VV"]),
    "help": Case(["-h"]),
    "help-all": Case(["--help-all"]),
    "unknown-option": Case(["-Z"]),
    "c-without-code": Case(["-c"]),
    "system-exit-3": Case(["-c", "raise SystemExit(3)"]),
    "system-exit-message": Case(["-c", "raise SystemExit('bye')"]),
    "uncaught-exception": Case(["-c", "def f():\n    1/0\nf()"]),
    "keyboard-interrupt": Case(["-c", "raise KeyboardInterrupt"]),
    "dev-mode": Case(["-X", "dev", "-c", "import sys; print(sys.flags.dev_mode)"]),
    "dev-mode-warns": Case(["-X", "dev", "-c", "import os; open(os.devnull); print('ok')"]),
    "dev-mode-faulthandler": Case(
        ["-X", "dev", "-c", "import faulthandler; print(faulthandler.is_enabled())"]
    ),
    "dev-mode-from-environment": Case(
        ["-c", "import sys; print(sys.flags.dev_mode)"], env={"PYTHONDEVMODE": "1"}
    ),
    "utf8-mode": Case(
        ["-X", "utf8", "-c", "import sys; print(sys.flags.utf8_mode, sys.getfilesystemencoding())"],
        env={"LC_ALL": "C"},
    ),
    "c-locale": Case(
        [
            "-c",
            "import sys, locale; print(sys.flags.utf8_mode, sys.stdout.encoding, "
            "locale.getpreferredencoding())",
        ],
        env={"LC_ALL": "C"},
    ),
    "utf8-locale": Case(
        ["-c", "import sys; print(sys.stdout.encoding, '\\u00e9\\u2603')"],
        env={"LC_ALL": "C.UTF-8"},
    ),
    "options": Case(["-b", "-B", "-d", "-E", "-O", "-q", "-s", "-S", "-u", "-R", "-c", FLAGS]),
    "verbose": Case(["-v", "-c", "pass"], masks=(ADDRESS,)),  # prints its loaders' reprs
    "x-options-known": Case(
        [
            "-X",
            "faulthandler",
            "-X",
            "warn_default_encoding",
            "-c",
            FLAGS + "; print(sys._xoptions)",
        ]
    ),
    "environment-variables": Case(
        ["-c", "import sys; print(sys.flags, sys.warnoptions, sys.stdout.encoding)"],
        env={
            "PYTHONWARNINGS": "error",
            "PYTHONIOENCODING": "latin-1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONOPTIMIZE": "2",
            "PYTHONVERBOSE": "",
            "PYTHONNOUSERSITE": "1",
            "PYTHONHASHSEED": "7",
        },
    ),
    "environment-ignored": Case(
        ["-E", "-c", "import sys; print(sys.flags.optimize, sys.warnoptions)"],
        env={"PYTHONWARNINGS": "error", "PYTHONOPTIMIZE": "2"},
    ),
    "sigterm": Case(["-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"]),
    "sigint": Case(
        ["-c", "import os, signal, time; os.kill(os.getpid(), signal.SIGINT); time.sleep(5)"]
    ),
    "optimize-twice": Case(["-OO", "-c", "import sys; assert 0; print(sys.flags.optimize)"]),
    "isolated": Case(["-I", "-c", "import sys; print(sys.flags.isolated, sys.path[0])"]),
    "safe-path": Case(["-P", "-c", "import sys; print(sys.flags.safe_path, sys.path[0])"]),
    "warnings-as-errors": Case(["-W", "error", "-c", "import warnings; warnings.warn('x')"]),
    "x-options": Case(["-X", "c", "-X", "a=b", "-c", "import sys; print(sys._xoptions)"]),
    "inspect-stdin": Case(["-i", "-c", "x = 5"], stdin="print(x * 2)\n"),
    "skip-first-line": Case(["-x", "script.py"], files={"script.py": "garbage\nprint('ok')\n"}),
    "paths": Case(["-c", PATHS]),
    "pythonpath": Case(["-c", "import sys; print(sys.path[1])"], env={"PYTHONPATH": "/opt/lib"}),
    "stdin-script": Case([], stdin="import sys; print(sys.argv, sys.path[0]); raise SystemExit(4)"),
    "stdin-dash": Case(["-", "a", "b"], stdin="import sys; print(sys.argv, repr(sys.path[0]))"),
    "script-file": Case(
        ["script.py", "a"],
        files={"script.py": "import sys, os; print(sys.argv, sys.path[0] == os.getcwd())\n"},
    ),
    "module-in-cwd": Case(
        ["-m", "mod", "a"],
        files={"mod.py": "import sys, os; print(sys.argv[1:], sys.path[0] == os.getcwd())\n"},
    ),
    "package-main": Case(
        ["-m", "pkg"], files={"pkg/__init__.py": "", "pkg/__main__.py": "print(__name__)\n"}
    ),
    "json-tool": Case(["-m", "json.tool", "--sort-keys"], stdin='{"b": 1, "a": [2]}'),
    "zip-app": Case(["app.zip", "x"]),  # the zip is made by the test
    "raw-bytes": Case(
        [
            "-c",
            "import sys; sys.stdout.buffer.write(b'a\\r\\nb\\rc\\xff\\n'); "
            "sys.stderr.buffer.write(b'\\xfe\\r\\n')",
        ]
    ),
    "c-extensions": Case(["-c", "import _ssl, _sqlite3, _ctypes, _decimal, zlib; print('ok')"]),
    "signals": Case(
        [
            "-c",
            "import signal as s; print([s.getsignal(n) for n in "
            "(s.SIGSEGV, s.SIGBUS, s.SIGPIPE, s.SIGINT, s.SIGTERM)])",
        ],
    ),
    "segfault": Case(["-c", "import ctypes; ctypes.string_at(0)"]),
    "multiprocessing-spawn": Case(
        [
            "-c",
            "import multiprocessing as mp\nif __name__ == '__main__':\n"
            "    print(mp.get_context('spawn').Pool(2).map(abs, [-1, -2]))",
        ],
    ),
    "subprocess-of-itself": Case(
        [
            "-c",
            "import subprocess, sys; "
            "print(subprocess.run([sys.executable, '-c', 'print(6*7)'], "
            "capture_output=True, text=True).stdout.strip())",
        ],
    ),
}


def run_side_by_side(place: Place, binary: Path, name: str, cwd: Path) -> tuple[tuple, tuple]:
    """(exit status, stdout, stderr) of the program and of its python for the
    case `name`, run in `cwd`."""
    case = CASES[name]
    cwd.mkdir(parents=True, exist_ok=True)
    if name == "zip-app":
        with zipfile.ZipFile(cwd / "app.zip", "w") as app:
            app.writestr("__main__.py", "import sys; print(sys.argv, sys.path[0])\n")
    for name, text in case.files.items():
        (cwd / name).parent.mkdir(parents=True, exist_ok=True)
        (cwd / name).write_text(text)
    stdin = None if case.stdin is None else case.stdin.encode()
    results = []
    for executable in (str(binary), place.python):
        ran = place.run_bytes([executable, *case.args], cwd=cwd, stdin=stdin, env=case.env)
        outputs = []
        for output in (ran.stdout, ran.stderr):
            output = output.replace(os.fsencode(executable), b"PROGRAM")
            for mask in case.masks:
                output = mask.sub(b"...", output)
            outputs.append(output)
        results.append((ran.returncode, *outputs))
    return results[0], results[1]


# The interactive prompt on a terminal: what it prints before its first
# prompt, one line of output that cannot be the echo of what was typed (the
# marker is built at run time), which REPL runs (3.13 and later: PyREPL, over
# readline before), Ctrl-C at the prompt, and the exit status of
# `raise SystemExit(5)`.
TERMINAL_CONTROL = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|[=>])|\r")
REPL_PROBE = (
    'import sys; print("RE" + "SULT", 6 * 7, sys.flags.interactive, sys.argv, '
    'repr(sys.path[0]), sorted(m for m in sys.modules if "repl" in m or m == "readline"))'
)


def repl_session(place: Place, executable: str, cwd: Path) -> tuple[str, str, int | None]:
    """(text before the first prompt, the probe's output, exit status) of
    `executable` started with no arguments on a terminal, in `cwd`."""
    child = place.terminal([executable], cwd, env={"TERM": "xterm"})
    try:
        child.expect_exact(">>> ")
        banner = TERMINAL_CONTROL.sub("", child.before)
        child.send(REPL_PROBE + "\r")
        child.expect(r"RESULT ([^\r\n]*)\r\n")
        probe = child.match.group(1)
        # Ctrl-C at the prompt: Python's own SIGINT handler reports it and the
        # REPL goes on.
        child.sendintr()
        child.expect_exact("KeyboardInterrupt")
        child.send("raise SystemExit(5)\r")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    return banner.replace(executable, "PROGRAM"), probe, child.exitstatus


def repl_side_by_side(place: Place, binary: Path, cwd: Path) -> tuple[tuple, tuple]:
    """`repl_session` of the program and of its python, each in its own folder."""
    ours = repl_session(place, str(binary), cwd / "ours")
    return ours, repl_session(place, place.python, cwd / "theirs")


RUN_PROBE = (
    "import sys, os; "
    "print(sys.argv, repr(sys.path[0]), getattr(sys, 'orig_argv', [])[1:], os.getcwd())"
)


# Python code that asks the allocator itself whether it owns what Python
# allocates: memory from each of Python's three allocator domains (raw, mem
# and obj, through PyMem_RawMalloc, PyMem_Malloc and PyObject_Malloc, small
# sizes that pymalloc would serve and a large one) and Python objects, with a
# pointer from the C library's malloc as the counter-check (`counter_check`:
# pyembed's older jemalloc crashes on a pointer it does not own, and its
# mimalloc also serves `malloc`). ctypes finds the allocator's functions in
# the program's exported symbols (pyembed's build.rs exports them; the pyo3
# tests link these programs with --export-dynamic).
OWNS = {
    "mimalloc": """
owns = lib.mi_is_in_heap_region
owns.argtypes, owns.restype = [ctypes.c_void_p], ctypes.c_bool
""",
    "snmalloc": """
size = lib.sn_malloc_usable_size
size.argtypes, size.restype = [ctypes.c_void_p], ctypes.c_size_t
owns = lambda pointer: size(pointer) > 0
""",
    "jemalloc": """
ctl = lib._rjem_mallctl
ctl.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t),
                ctypes.c_void_p, ctypes.c_size_t]
def owns(pointer):
    arena, size, query = ctypes.c_uint(), ctypes.c_size_t(4), ctypes.c_void_p(pointer)
    return ctl(b"arenas.lookup", ctypes.byref(arena), ctypes.byref(size),
               ctypes.byref(query), ctypes.sizeof(query)) == 0
""",
}
PYTHON_USES_IT = """
import ctypes
lib, api = ctypes.CDLL(None), ctypes.pythonapi
lib.malloc.restype = ctypes.c_void_p
{owns}
for domain in ("PyMem_RawMalloc", "PyMem_Malloc", "PyObject_Malloc"):
    allocate, free = getattr(api, domain), getattr(api, domain.replace("Malloc", "Free"))
    allocate.argtypes, allocate.restype = [ctypes.c_size_t], ctypes.c_void_p
    free.argtypes = [ctypes.c_void_p]
    for length in (8, 64, 512, 100_000):
        pointer = allocate(length)
        assert pointer and owns(pointer), f"{{domain}}({{length}}) is not the allocator's"
        free(pointer)
objects = [bytes(100_000), "x" * 50, 10**40, [1, 2, 3]]
assert all(owns(id(o)) for o in objects), "a Python object is not the allocator's"
if {counter_check}:
    assert not owns(lib.malloc(64)), "the allocator claims the C library's memory"
print("owned")
"""
PYMALLOC_STATS = "Small block threshold"
