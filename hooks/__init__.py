"""Post-generation hooks of rust-embedded-python-template, the Copier template
for Rust programs that embed CPython (pyo3 or pyembed).

Copier runs them after `copier copy` (see `_tasks` in copier.yml); a generated
project carries a copy in tools/hooks, so the same commands work later without
Copier: `python3 tools/hooks check` and `python3 tools/hooks build`.

Modules, one concern each:
- toolenv: what the hooks need from PyPI (requirements.txt, pinned), in a
  tool environment for a Python that lacks it; standard library only, since
  `__main__` uses it before anything else is there;
- report: how problems and progress are printed;
- project: the generated project (answers, support table, Cargo metadata);
- interpreter: finding the Python the build will link, as PyO3 does, and vetting it;
- runtime: the Python runtime a relocatable program carries (libpython, the
  standard library), and reading and patching ELF files;
- packages: the application (the project's python/ folder) and the packages
  of --requirements, installed into the runtime as they are now;
- artifacts: step 1 of the two-step build (the runtime and the pyo3
  configuration; for pyembed, PyOxidizer's artifacts when it works);
- cargo: step 2, `cargo build` in build-mode-prebuilt-artifacts;
- bundle: the relocatable folder dist/NAME and its archive;
- onefile: `build --onefile`, one executable that carries its Python (pyo3
  engine, Linux): a static libpython, and the runtime as a payload;
- cli: the command-line entry and its exit-status policy.

Each module imports only those listed after it (onefile: cargo, artifacts,
interpreter, project, report and runtime).
"""
