"""The generated project: its answers, and the table of engines it can use."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .report import HookError

ANSWERS_FILE = ".copier-answers.yml"
# Seconds the two-step build lets pyoxidizer run, unless PYOXIDIZER_TIMEOUT or
# --pyoxidizer-timeout says otherwise.
PYOXIDIZER_TIMEOUT = 900.0
SUPPORT_FILE = Path(__file__).resolve().parent / "support.yml"

Version = tuple[int, ...]


ENGINES = ("pyo3", "pyembed")


@dataclass(frozen=True)
class Support:
    """What one engine at one crate version can embed (a row of support.yml)."""

    engine: str  # "pyo3" or "pyembed"
    version: str  # the version of the engine's crate (pyo3 or pyembed)
    pyo3: str
    python_min: Version
    python_max: Version
    free_threaded: bool = False

    @property
    def name(self) -> str:
        """The engine's crate and version, such as "pyo3 0.30.1"."""
        return f"{self.engine} {self.version}"

    @property
    def python_range(self) -> str:
        return f"{dotted(self.python_min)} to {dotted(self.python_max)}"

    def accepts(self, version: Version) -> bool:
        return self.python_min <= version[:2] <= self.python_max


def dotted(version: Version) -> str:
    return ".".join(map(str, version))


def load_yaml(text: str) -> dict[str, Any]:
    """A YAML mapping ({} when empty) read as yaml.safe_load reads it, with
    PyYAML's C loader when it was built with libyaml (most wheels are): several
    times faster on support.yml, which every hook run reads."""
    safe_loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=safe_loader) or {}  # noqa: S506 (a safe loader)


def support_table() -> dict[str, dict[str, Support]]:
    """engine -> crate version -> what it supports."""
    table = load_yaml(SUPPORT_FILE.read_text(encoding="utf-8"))["engine_support"]["default"]
    return {
        engine: {
            version: Support(
                engine=engine,
                version=version,
                pyo3=row["pyo3"],
                python_min=tuple(row["python_min"]),
                python_max=tuple(row["python_max"]),
                free_threaded=bool(row.get("free_threaded", False)),
            )
            for version, row in versions.items()
        }
        for engine, versions in table.items()
    }


def newest(versions: dict[str, Support]) -> Support:
    return versions[max(versions, key=_version_key)]


@dataclass(frozen=True)
class Project:
    root: Path
    answers: dict[str, Any]

    @classmethod
    def at(cls, root: Path) -> Project:
        root = root.resolve()
        if not (root / "Cargo.toml").is_file():
            raise HookError(
                f"{root} has no Cargo.toml, so it is not a project made from this template.",
                "Run the command from the project's folder, or pass --project DIR.",
            )
        answers_path = root / ANSWERS_FILE
        try:
            answers = load_yaml(answers_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            answers = {}
        except yaml.YAMLError as error:
            raise HookError(
                f"{answers_path} is not valid YAML ({error}).",
                "Restore it from version control; Copier needs it to update the project.",
            ) from error
        return cls(root, answers)

    @property
    def name(self) -> str:
        return str(self.answers.get("project_name") or self.root.name)

    @property
    def engine(self) -> str:
        """The engine answer; projects from before the question are pyembed ones."""
        engine = self.answers.get("engine")
        if engine is None:
            return "pyembed" if self.answers.get("pyembed_version") else "pyo3"
        if engine not in ENGINES:
            raise HookError(
                f"engine {engine!r} (from {ANSWERS_FILE}) is not one this template knows.",
                "Run `copier update --trust --data engine=pyo3` (or engine=pyembed).",
            )
        return str(engine)

    @property
    def support(self) -> Support:
        versions = support_table()[self.engine]
        if self.engine != "pyembed":
            return newest(versions)
        version = str(self.answers.get("pyembed_version") or newest(versions).version)
        if version not in versions:
            raise HookError(
                f"pyembed {version} (from {ANSWERS_FILE}) is not in the template's "
                f"support table, which knows {', '.join(sorted(versions))}.",
                "Run `copier update --trust --data pyembed_version=...` with a supported one.",
            )
        return versions[version]

    def default_features(self) -> list[str]:
        """Cargo's default features as the answers make them (copier.yml's
        default_features)."""
        features = [f"build-mode-{self.answers.get('build_mode', 'standalone')}"]
        if self.answers.get("global_allocator", "system") != "system":
            features.append(f"global-allocator-{self.answers['global_allocator']}")
        if self.answers.get("python_allocator", "default") != "default":
            features.append(f"allocator-{self.answers['python_allocator']}")
        return features

    @property
    def artifact_dir(self) -> Path:
        return self.root / "target" / "out"


def _version_key(version: str) -> Version:
    return tuple(int(part) for part in version.split("."))
