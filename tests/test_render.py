"""Every answer shows up where it must in the generated project, without cargo:
Cargo.toml and Cargo.lock parsed as TOML, the Rust sources, pyoxidizer.bzl,
the README and the answers file, for both engines."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from .conftest import FILES_BY_ENGINE, ROOT, copier_settings, files, render

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

# The tests render the working tree on purpose, uncommitted changes included.
pytestmark = pytest.mark.filterwarnings("ignore::copier.errors.DirtyLocalWarning")

ENGINES = ["pyo3", "pyembed"]

DEFAULTS = {
    "project_name": "demo",
    "python_package": "demo",
    "engine": "pyo3",
    "build_mode": "standalone",
    "global_allocator": "system",
    "python_allocator": "default",
    "windows_subsystem": "console",
    "run_mode": "repl",
    "ci": "github",
}
# Defaults that only apply to one engine.
ENGINE_DEFAULTS = {"pyo3": {}, "pyembed": {"pyembed_version": "0.24.0"}}

ALLOCATORS = ["jemalloc", "mimalloc", "snmalloc"]

# Written out here rather than read from hooks/support.yml, so a wrong table
# there cannot make its own test pass.
SUPPORT = {
    "pyembed": {"0.24.0": {"pyo3": "0.17.3", "python_min": (3, 8), "python_max": (3, 11)}},
    "pyo3": {"0.30.1": {"pyo3": "0.30.1", "python_min": (3, 9), "python_max": (3, 15)}},
}

ANSWERS = [
    "project_name",
    "python_package",
    "engine",
    "build_mode",
    "global_allocator",
    "python_allocator",
    "windows_subsystem",
    "run_mode",
    "ci",
]
ENGINE_ANSWERS = {"pyo3": [], "pyembed": ["pyembed_version"]}
COMPUTED = [
    "engine_version",
    "windows_features",
    "crate_name",
    "rust_module_name",
    "python_min",
    "python_max",
    "pyo3_version",
    "default_features",
    "run_code_literal",
    "entry_point_code",
    "reserved_names",
    "lock_crate_names",
    "engine_support",
]

RUN_SETTING_BZL = re.compile(r"^\s*python_config\.(run_\w+|parse_argv)\s*=\s*(.*)$", re.MULTILINE)
RUN_SETTING_RS = re.compile(r"^\s*(run_\w+|parse_argv):\s*(.*),$", re.MULTILINE)


# Every value of every choice question is in one of these answer sets, for each
# engine, so a few renders cover them all. windows_subsystem=windows is refused
# with jemalloc, hence the pairing. The names are also ones the Cargo.lock test
# wants.
VARIANTS = [
    {},
    {"engine": "pyembed"},
    {
        "project_name": "a",
        "engine": "pyembed",
        "build_mode": "pyoxidizer-exe",
        "global_allocator": "jemalloc",
        "python_allocator": "jemalloc",
        "run_mode": "module",
        "run_module": "http.server",
        "run_build": True,
    },
    {
        "project_name": "zz",
        "engine": "pyembed",
        "build_mode": "prebuilt-artifacts",
        "global_allocator": "mimalloc",
        "python_allocator": "snmalloc",
        "windows_subsystem": "windows",
        "run_mode": "code",
        "run_code": "print('hi')",
    },
    {
        "project_name": "Zed",
        "engine": "pyembed",
        "global_allocator": "snmalloc",
        "python_allocator": "mimalloc",
    },
    {
        "project_name": "b",
        "build_mode": "prebuilt-artifacts",
        "global_allocator": "jemalloc",
        "python_allocator": "jemalloc",
        "run_mode": "module",
        "run_module": "http.server",
        "run_build": True,
    },
    {
        "project_name": "zy",
        "global_allocator": "mimalloc",
        "python_allocator": "snmalloc",
        "windows_subsystem": "windows",
        "run_mode": "code",
        "run_code": "print('hi')",
    },
    {"project_name": "Zz", "global_allocator": "snmalloc", "python_allocator": "mimalloc"},
]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """`project(**answers)`: a project rendered with (at least) these answers.

    The first of VARIANTS that has them all, else one rendered with exactly
    them; each is rendered once per module, on first use. Tests must
    therefore only check what their own answers decide."""
    rendered: dict[int, Path] = {}
    candidates = list(VARIANTS)

    def has(variant: dict[str, Any], answers: dict[str, Any]) -> bool:
        given = {**DEFAULTS, **variant}
        given = {**ENGINE_DEFAULTS[given["engine"]], **given}
        return all(key in given and given[key] == value for key, value in answers.items())

    def make(**answers: Any) -> Path:
        answers = {"engine": DEFAULTS["engine"], **answers}
        index = next((i for i, v in enumerate(candidates) if has(v, answers)), len(candidates))
        if index == len(candidates):
            candidates.append(answers)
        if index not in rendered:
            destination = tmp_path_factory.mktemp("render") / "project"
            rendered[index] = render(destination, candidates[index])
        return rendered[index]

    return make


def read(project: Path, name: str) -> str:
    return (project / name).read_text(encoding="utf-8")


def toml(project: Path, name: str) -> dict[str, Any]:
    return tomllib.loads(read(project, name))


def default_features(project: Path) -> list[str]:
    return toml(project, "Cargo.toml")["features"]["default"]


def run_settings(project: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The run_* and parse_argv settings of pyoxidizer.bzl and of src/python_config.rs."""
    bzl = dict(RUN_SETTING_BZL.findall(read(project, "pyoxidizer.bzl")))
    rust = dict(RUN_SETTING_RS.findall(read(project, "src/python_config.rs")))
    return bzl, rust


def standalone_backend(python_config_rs: str, enabled: set[str]) -> str:
    """The MemoryAllocatorBackend variant that src/python_config.rs's
    `cfg!(feature = ...)` chain yields when the features `enabled` are on."""
    branches = re.findall(
        r'cfg!\(feature = "([^"]+)"\)\s*\{\s*pyembed::MemoryAllocatorBackend::(\w+)\s*\}',
        python_config_rs,
    )
    fallback = re.search(
        r"\}\s*else\s*\{\s*pyembed::MemoryAllocatorBackend::(\w+)\s*\}", python_config_rs
    )
    assert branches, "no cfg!(feature = ...) branch in src/python_config.rs"
    assert fallback, "no else branch in src/python_config.rs"
    return next((variant for feature, variant in branches if feature in enabled), fallback[1])


def unescape(literal: str) -> str:
    """The value of the inside of a Rust or Starlark double-quoted string that
    uses only the escapes run_code_literal produces; any other escape fails."""
    escapes = {"\\": "\\", '"': '"', "n": "\n", "r": "\r", "t": "\t"}

    def one(match: re.Match[str]) -> str:
        assert match[1] in escapes, f"unexpected escape \\{match[1]} in {literal!r}"
        return escapes[match[1]]

    return re.sub(r"\\(.)", one, literal, flags=re.DOTALL)


def satisfies(requirement: str, version: str) -> bool:
    """Cargo's `=x.y.z` and default caret `x.y.z` requirements."""
    if requirement.startswith("="):
        return version == requirement[1:]
    want = [int(part) for part in requirement.split(".")]
    have = [int(part) for part in version.split("+")[0].split(".")]
    significant = next((i for i, part in enumerate(want) if part), len(want) - 1) + 1
    return have >= want and have[:significant] == want[:significant]


# ---- Defaults ----


@pytest.mark.parametrize("engine", ENGINES)
def test_defaults_generate_exactly_the_expected_files(project, engine):
    assert set(files(project(engine=engine))) == FILES_BY_ENGINE[engine]


def test_the_default_engine_is_pyo3(project):
    answers = yaml.safe_load(read(project(), ".copier-answers.yml"))

    assert answers["engine"] == "pyo3"
    assert "pyembed_version" not in answers


def test_default_pyembed_cargo_toml_is_a_standalone_package_that_pins_pyembed(project):
    cargo = toml(project(engine="pyembed"), "Cargo.toml")

    assert cargo["package"]["name"] == "demo"
    assert cargo["package"]["build"] == "build.rs"
    assert cargo["package"]["edition"] == "2021"
    # An empty [workspace] keeps the project out of any enclosing workspace.
    assert cargo["workspace"] == {}
    assert cargo["dependencies"]["pyembed"] == {"version": "=0.24.0", "default-features": False}


def test_default_pyo3_cargo_toml_is_a_standalone_package_on_pyo3_with_only_its_macros(project):
    cargo = toml(project(), "Cargo.toml")

    assert cargo["package"]["name"] == "demo"
    assert cargo["package"]["build"] == "build.rs"
    assert cargo["package"]["edition"] == "2024"
    assert cargo["workspace"] == {}
    assert cargo["dependencies"]["pyo3"] == {
        "version": "0.30.1",
        "default-features": False,
        "features": ["macros"],
    }
    assert "pyembed" not in cargo["dependencies"]


def test_default_pyembed_cargo_toml_declares_every_feature_with_standalone_as_default(project):
    features = toml(project(engine="pyembed"), "Cargo.toml")["features"]

    assert features == {
        "default": ["build-mode-standalone"],
        "build-mode-standalone": [],
        "build-mode-pyoxidizer-exe": [],
        "build-mode-prebuilt-artifacts": [],
        "global-allocator-jemalloc": ["dep:jemallocator"],
        "global-allocator-mimalloc": ["dep:mimalloc"],
        "global-allocator-snmalloc": ["dep:snmalloc-rs"],
        "allocator-jemalloc": ["pyembed/allocator-jemalloc"],
        "allocator-mimalloc": ["pyembed/allocator-mimalloc"],
        "allocator-snmalloc": ["pyembed/allocator-snmalloc"],
        "python-environment": [],
    }


def test_default_pyo3_cargo_toml_has_two_build_modes_every_allocator_and_onefile_feature(
    project,
):
    features = toml(project(), "Cargo.toml")["features"]

    assert features == {
        "default": ["build-mode-standalone"],
        "build-mode-standalone": [],
        "build-mode-prebuilt-artifacts": [],
        "global-allocator-jemalloc": ["dep:tikv-jemallocator"],
        "global-allocator-mimalloc": ["dep:mimalloc"],
        "global-allocator-snmalloc": ["dep:snmalloc-rs"],
        "allocator-jemalloc": ["dep:tikv-jemalloc-sys"],
        "allocator-mimalloc": ["dep:libmimalloc-sys"],
        "allocator-snmalloc": ["dep:snmalloc-sys"],
        "onefile": ["dep:lz4_flex"],
        "python-environment": [],
    }


@pytest.mark.parametrize("engine", ENGINES)
def test_embed_resource_is_a_build_dependency_of_windows_builds_only(project, engine):
    cargo = toml(project(engine=engine), "Cargo.toml")

    assert "embed-resource" in cargo["target"]["cfg(windows)"]["build-dependencies"]
    assert "embed-resource" not in cargo["build-dependencies"]
    assert "embed-resource" not in cargo["dependencies"]


@pytest.mark.parametrize("engine", ENGINES)
def test_pyo3_build_config_is_the_build_dependency_that_the_engine_uses(project, engine):
    build_dependency = toml(project(engine=engine), "Cargo.toml")["build-dependencies"][
        "pyo3-build-config"
    ]
    (row,) = SUPPORT[engine].values()

    assert build_dependency["version"] == row["pyo3"]
    assert "resolve-config" in build_dependency["features"]


# ---- Each value of each choice question ----


BUILD_MODES = {
    "pyembed": ["standalone", "pyoxidizer-exe", "prebuilt-artifacts"],
    "pyo3": ["standalone", "prebuilt-artifacts"],
}


@pytest.mark.parametrize(
    ("engine", "build_mode"), [(e, m) for e, modes in BUILD_MODES.items() for m in modes]
)
def test_build_mode_is_the_first_and_only_build_mode_in_the_default_features(
    project, engine, build_mode
):
    generated = project(engine=engine, build_mode=build_mode)
    default = default_features(generated)
    declared = [f for f in toml(generated, "Cargo.toml")["features"] if f.startswith("build-mode")]

    assert default[0] == f"build-mode-{build_mode}"
    assert [feature for feature in default if feature.startswith("build-mode-")] == [default[0]]
    assert declared == [f"build-mode-{mode}" for mode in BUILD_MODES[engine]]
    assert f"The default build mode is `{build_mode}`" in read(generated, "README.md")


GLOBAL_ALLOCATOR_TYPES = {
    "pyembed": {"jemalloc": "jemallocator::Jemalloc"},
    "pyo3": {"jemalloc": "tikv_jemallocator::Jemalloc"},
}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("allocator", ["system", *ALLOCATORS])
def test_global_allocator_enables_its_feature_and_optional_dependency(project, engine, allocator):
    generated = project(engine=engine, global_allocator=allocator)
    cargo = toml(generated, "Cargo.toml")
    enabled = [f for f in cargo["features"]["default"] if f.startswith("global-allocator-")]
    by_hand = re.search(
        r'--features "build-mode-prebuilt-artifacts([^"]*)"', read(generated, "README.md")
    )
    assert by_hand, "no two-step build command in README.md"
    documented = [f for f in by_hand[1].split() if f.startswith("global-allocator-")]

    if allocator == "system":
        assert enabled == documented == []
        return
    feature = f"global-allocator-{allocator}"
    assert enabled == documented == [feature]
    for enables in cargo["features"][feature]:
        dependency = enables.removeprefix("dep:")
        assert cargo["dependencies"][dependency]["optional"] is True
    # The cfg-gated #[global_allocator] static for the feature must be there
    # (pyo3: in the library, which every binary of the package links).
    assert re.search(
        rf'#\[cfg\(feature = "{feature}"\)\]\s*#\[global_allocator\]',
        read(generated, "src/lib.rs" if engine == "pyo3" else "src/main.rs"),
    )


@pytest.mark.parametrize("allocator", ["default", *ALLOCATORS])
def test_pyembed_python_allocator_sets_the_same_backend_for_both_interpreter_configs(
    project, allocator
):
    generated = project(engine="pyembed", python_allocator=allocator)
    cargo = toml(generated, "Cargo.toml")
    enabled = {f for f in cargo["features"]["default"] if f.startswith("allocator-")}
    bzl_backends = re.findall(
        r"^\s*python_config\.allocator_backend = (.*)$",
        read(generated, "pyoxidizer.bzl"),
        re.MULTILINE,
    )

    assert enabled == (set() if allocator == "default" else {f"allocator-{allocator}"})
    for feature in enabled:
        assert cargo["features"][feature] == [f"pyembed/{feature}"]
    assert bzl_backends == [f'"{allocator}"']
    assert standalone_backend(read(generated, "src/python_config.rs"), enabled) == (
        allocator.capitalize()
    )
    assert f'python_config.allocator_backend = "{allocator}"' in read(generated, "README.md")


PYO3_ALLOCATOR_CRATES = {
    "jemalloc": "tikv_jemalloc_sys",
    "mimalloc": "libmimalloc_sys",
    "snmalloc": "snmalloc_sys",
}


@pytest.mark.parametrize("allocator", ["default", *ALLOCATORS])
def test_pyo3_python_allocator_enables_its_c_library_for_the_interpreter(project, allocator):
    generated = project(python_allocator=allocator)
    cargo = toml(generated, "Cargo.toml")
    enabled = {f for f in cargo["features"]["default"] if f.startswith("allocator-")}
    interpreter_rs = read(generated, "src/interpreter.rs")

    assert enabled == (set() if allocator == "default" else {f"allocator-{allocator}"})
    for name, crate in PYO3_ALLOCATOR_CRATES.items():
        # Each allocator's functions come from its crate, under its own feature.
        assert re.search(
            rf'#\[cfg\(feature = "allocator-{name}"\)\]\s*use {crate}::', interpreter_rs
        )
        dependency = cargo["features"][f"allocator-{name}"][0].removeprefix("dep:")
        assert dependency.replace("-", "_") == crate
        assert cargo["dependencies"][dependency]["optional"] is True
    for domain in ("RAW", "MEM", "OBJ"):
        assert f"PYMEM_DOMAIN_{domain}" in interpreter_rs


def test_standalone_config_maps_each_allocator_feature_to_its_backend(project):
    python_config_rs = read(project(engine="pyembed"), "src/python_config.rs")

    for allocator in ALLOCATORS:
        assert standalone_backend(python_config_rs, {f"allocator-{allocator}"}) == (
            allocator.capitalize()
        )
    assert standalone_backend(python_config_rs, set()) == "Default"
    assert "allocator_backend: allocator_backend()," in python_config_rs


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("subsystem", ["console", "windows"])
def test_windows_subsystem_is_the_crate_attribute_of_main_rs(project, engine, subsystem):
    main_rs = read(project(engine=engine, windows_subsystem=subsystem), "src/main.rs")

    assert re.findall(r"^#!\[windows_subsystem = .*$", main_rs, re.MULTILINE) == [
        f'#![windows_subsystem = "{subsystem}"]'
    ]


RUN_MODES = [
    pytest.param(
        {"run_mode": "repl"},
        {},
        {},
        "interpreter::Run::Python",
        "The program behaves like `python`",
        id="repl",
    ),
    pytest.param(
        {"run_mode": "module", "run_module": "http.server"},
        {"run_module": '"http.server"', "parse_argv": "False"},
        {"run_module": 'Some("http.server".to_string())', "parse_argv": "Some(false)"},
        'interpreter::Run::Module("http.server")',
        "like `python -I -m http.server`",
        id="module",
    ),
    pytest.param(
        {"run_mode": "code", "run_code": "print('hi')"},
        {"run_command": "\"print('hi')\"", "parse_argv": "False"},
        {"run_command": "Some(\"print('hi')\".to_string())", "parse_argv": "Some(false)"},
        "interpreter::Run::Code(\"print('hi')\")",
        "The program runs the code chosen",
        id="code",
    ),
]


@pytest.mark.parametrize(
    ("answers", "bzl_expected", "rust_expected", "_", "readme_says"), RUN_MODES
)
def test_pyembed_run_mode_sets_the_same_run_setting_in_both_interpreter_configs(
    project, answers, bzl_expected, rust_expected, _, readme_says
):
    generated = project(engine="pyembed", **answers)
    bzl, rust = run_settings(generated)
    recorded = yaml.safe_load(read(generated, ".copier-answers.yml"))

    assert bzl == bzl_expected
    assert rust == rust_expected
    assert readme_says in read(generated, "README.md")
    # Only the run target of the chosen mode is an answer worth keeping.
    assert {key: recorded[key] for key in answers} == answers
    assert {"run_module", "run_code"} & set(recorded) == set(answers) - {"run_mode"}


@pytest.mark.parametrize(("answers", "_", "__", "run", "readme_says"), RUN_MODES)
def test_pyo3_run_mode_is_the_run_constant_of_main_rs(project, answers, _, __, run, readme_says):
    generated = project(**answers)
    recorded = yaml.safe_load(read(generated, ".copier-answers.yml"))

    assert re.findall(
        r"^const RUN: interpreter::Run = (.*);$", read(generated, "src/main.rs"), re.M
    ) == [run]
    assert readme_says in read(generated, "README.md")
    assert {key: recorded[key] for key in answers} == answers


@pytest.mark.parametrize(
    ("engine", "version"), [(e, v) for e, versions in SUPPORT.items() for v in versions]
)
def test_engine_version_pins_the_crate_and_bounds_python_in_build_rs(project, engine, version):
    answers = {"pyembed_version": version} if engine == "pyembed" else {}
    generated = project(engine=engine, **answers)
    support = SUPPORT[engine][version]
    cargo = toml(generated, "Cargo.toml")
    build_rs = read(generated, "build.rs")
    (low_major, low_minor), (high_major, high_minor) = support["python_min"], support["python_max"]
    locked = {p["name"]: p["version"] for p in toml(generated, "Cargo.lock")["package"]}

    if engine == "pyembed":
        assert cargo["dependencies"]["pyembed"]["version"] == f"={version}"
        assert locked["pyembed"] == version
    else:
        assert cargo["dependencies"]["pyo3"]["version"] == version
        assert locked["pyo3"] == version
    assert cargo["build-dependencies"]["pyo3-build-config"]["version"] == support["pyo3"]
    assert f"const PYTHON_MIN: (u8, u8) = ({low_major}, {low_minor});" in build_rs
    assert f"const PYTHON_MAX: (u8, u8) = ({high_major}, {high_minor});" in build_rs
    assert f"CPython {low_major}.{low_minor} to {high_major}.{high_minor}" in read(
        generated, "README.md"
    ).replace("\n", " ")
    assert locked["pyo3-build-config"] == support["pyo3"]


def test_every_supported_engine_version_has_expectations_in_this_module():
    table = yaml.safe_load((ROOT / "hooks" / "support.yml").read_text(encoding="utf-8"))
    rows = table["engine_support"]["default"]

    assert {engine: set(versions) for engine, versions in rows.items()} == {
        engine: set(versions) for engine, versions in SUPPORT.items()
    }
    for engine, versions in SUPPORT.items():
        for version, expected in versions.items():
            row = rows[engine][version]
            assert (row["pyo3"], tuple(row["python_min"]), tuple(row["python_max"])) == (
                expected["pyo3"],
                expected["python_min"],
                expected["python_max"],
            )


def test_engine_choices_name_the_python_range_of_the_support_table():
    engine = copier_settings()["engine"]

    for label, engine_name in engine["choices"].items():
        (row,) = SUPPORT[engine_name].values()
        low, high = ".".join(map(str, row["python_min"])), ".".join(map(str, row["python_max"]))
        assert f"CPython {low} to {high}" in label
        assert f"CPython {low}-{high}" in engine["help"]


# ---- Answers that reach the files as text ----


RUN_CODE = "print(\"a\\\\b\", '{{ 7*7 }}')\n\tx = 1  # $(touch x) café ☃\r\nprint(x)\\"


def test_run_code_reaches_both_pyembed_configs_unchanged_and_unevaluated(project):
    generated = project(engine="pyembed", run_mode="code", run_code=RUN_CODE)
    rust = re.search(
        r'run_command: Some\("((?:[^"\\\n]|\\.)*)"\.to_string\(\)\)',
        read(generated, "src/python_config.rs"),
    )
    bzl = re.search(
        r'^\s*python_config\.run_command = "((?:[^"\\\n]|\\.)*)"$',
        read(generated, "pyoxidizer.bzl"),
        re.MULTILINE,
    )

    assert rust, "no single-line run_command string literal in src/python_config.rs"
    assert bzl, "no single-line run_command string literal in pyoxidizer.bzl"
    assert unescape(rust[1]) == RUN_CODE
    assert unescape(bzl[1]) == RUN_CODE
    assert yaml.safe_load(read(generated, ".copier-answers.yml"))["run_code"] == RUN_CODE
    assert not (generated / "x").exists()


def test_run_code_reaches_pyo3_main_rs_unchanged_and_unevaluated(project):
    generated = project(run_mode="code", run_code=RUN_CODE)
    rust = re.search(
        r'^const RUN: interpreter::Run = interpreter::Run::Code\("((?:[^"\\\n]|\\.)*)"\);$',
        read(generated, "src/main.rs"),
        re.MULTILINE,
    )

    assert rust, "no single-line Run::Code string literal in src/main.rs"
    assert unescape(rust[1]) == RUN_CODE
    assert yaml.safe_load(read(generated, ".copier-answers.yml"))["run_code"] == RUN_CODE
    assert not (generated / "x").exists()


@pytest.mark.parametrize("engine", ENGINES)
def test_project_name_names_the_package_and_the_windows_manifest_files(project, engine):
    generated = project(engine=engine, project_name="My-App_2")

    # The app's package is the name as a Python identifier.
    assert set(files(generated)) == {
        name.replace("python/demo", "python/my_app_2").replace("demo", "My-App_2")
        for name in FILES_BY_ENGINE[engine]
    }
    assert toml(generated, "Cargo.toml")["package"]["name"] == "My-App_2"
    assert re.findall(
        r"^1 RT_MANIFEST (.*)$", read(generated, "My-App_2-manifest.rc"), re.MULTILINE
    ) == ['"My-App_2.exe.manifest"']
    assert "./target/debug/My-App_2 " in read(generated, "README.md")
    if engine == "pyembed":
        assert 'name = "My-App_2",' in read(generated, "pyoxidizer.bzl")


def test_the_rust_module_is_named_after_the_project_as_a_python_identifier(project):
    generated = project(project_name="My-App_2")

    assert "pub mod my_app_2_rs {" in read(generated, "src/rust_module.rs")
    assert "import my_app_2_rs" in read(generated, "README.md")


# ---- Cargo.lock ----


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", ["a", "demo", "pyembed-app", "zz", "Zed", "my_app", "My-App_2"])
def test_cargo_lock_holds_the_project_where_cargo_sorts_it(project, engine, name):
    text = read(project(engine=engine, project_name=name), "Cargo.lock")
    lock = tomllib.loads(text)
    names = [package["name"] for package in lock["package"]]
    own = [package for package in lock["package"] if package["name"] == name]

    assert lock["version"] == 4
    assert len(own) == 1
    assert "source" not in own[0]
    # Cargo writes packages sorted by name (plain string order, so capitals
    # first); any other order and the first build rewrites the file.
    assert names == sorted(names)
    assert text.endswith("]\n")
    assert "\n\n\n" not in text
    assert text.count("\n\n[[package]]\n") == len(names)


@pytest.mark.parametrize("engine", ENGINES)
def test_cargo_lock_resolves_exactly_the_dependencies_of_cargo_toml(project, engine):
    generated = project(engine=engine)
    cargo = toml(generated, "Cargo.toml")
    packages = toml(generated, "Cargo.lock")["package"]
    requirements = {
        **cargo["dependencies"],
        **cargo["build-dependencies"],
        **cargo["target"]["cfg(windows)"]["build-dependencies"],
    }
    (own,) = (package for package in packages if package["name"] == "demo")

    assert own["dependencies"] == sorted(requirements)
    for dependency, requirement in requirements.items():
        wanted = requirement if isinstance(requirement, str) else requirement["version"]
        versions = [p["version"] for p in packages if p["name"] == dependency]
        assert len(versions) == 1, f"{dependency}: {versions}"
        assert satisfies(wanted, versions[0]), f"{dependency} {versions[0]} vs {wanted}"
    locked = {p["name"] for p in packages} | {f"{p['name']} {p['version']}" for p in packages}
    for package in packages:
        for dependency in package.get("dependencies", []):
            assert dependency in locked, f"{package['name']} needs {dependency}, not locked"


# ---- The answers file ----


@pytest.mark.parametrize("engine", ENGINES)
def test_answers_file_records_the_answers_but_no_secret_or_computed_value(project, engine):
    # run_build=true is given explicitly: even then it must not be recorded.
    variant = next(v for v in VARIANTS if v.get("run_build") and v.get("engine", "pyo3") == engine)
    generated = project(**variant)
    given = {**DEFAULTS, **ENGINE_DEFAULTS[engine], **variant}
    given["python_package"] = given["project_name"]  # python_package's default
    recorded = yaml.safe_load(read(generated, ".copier-answers.yml"))
    stored = ANSWERS + ENGINE_ANSWERS[engine]

    assert recorded["_src_path"] == str(ROOT)
    assert isinstance(recorded["_commit"], str)
    assert recorded["_commit"]
    assert {key: recorded[key] for key in stored} == {key: given[key] for key in stored}
    assert recorded["run_module"] == given["run_module"]
    assert "run_build" not in recorded
    assert set(COMPUTED) & set(recorded) == set()
    assert set(recorded) == {"_commit", "_src_path", "run_module", *stored}


# ---- Templates fully rendered ----


@pytest.mark.parametrize(
    "answers",
    VARIANTS,
    ids=[f"{v.get('project_name', 'demo')}-{v.get('engine', 'pyo3')}" for v in VARIANTS],
)
def test_rendered_files_contain_no_jinja_syntax(project, answers):
    # tools/hooks is copied, not rendered: its Python may use braces freely.
    # GitHub's own expressions, ${{ ... }}, are meant to stay in workflows.
    leftovers = {
        name: marker
        for name, content in files(project(**answers)).items()
        if not name.startswith("tools/hooks/")
        for marker in ("{{", "}}", "{%", "%}", "{#", "#}")
        if marker in re.sub(r"\$\{\{[^{}]*\}\}", "", content.decode("utf-8"))
    }

    assert leftovers == {}


@pytest.mark.parametrize("engine", ENGINES)
def test_default_features_are_listed_in_the_readme(project, engine):
    generated = project(engine=engine, global_allocator="snmalloc", python_allocator="mimalloc")
    default = default_features(generated)

    assert default == ["build-mode-standalone", "global-allocator-snmalloc", "allocator-mimalloc"]
    assert (
        "Default features of this project: " + ", ".join(json.dumps(f) for f in default) + "."
    ) in read(generated, "README.md")
