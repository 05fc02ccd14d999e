"""The generated project: its answers, and the pyembed support table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .report import HookError

ANSWERS_FILE = ".copier-answers.yml"
SUPPORT_FILE = Path(__file__).resolve().parent / "support.yml"

Version = tuple[int, ...]


@dataclass(frozen=True)
class Support:
    """What one pyembed version can link (a row of support.yml)."""

    pyembed: str
    pyo3: str
    python_min: Version
    python_max: Version

    @property
    def python_range(self) -> str:
        return f"{dotted(self.python_min)} to {dotted(self.python_max)}"

    def accepts(self, version: Version) -> bool:
        return self.python_min <= version[:2] <= self.python_max


def dotted(version: Version) -> str:
    return ".".join(map(str, version))


def support_table() -> dict[str, Support]:
    rows = yaml.safe_load(SUPPORT_FILE.read_text(encoding="utf-8"))["pyembed_support"]["default"]
    return {
        version: Support(
            pyembed=version,
            pyo3=row["pyo3"],
            python_min=tuple(row["python_min"]),
            python_max=tuple(row["python_max"]),
        )
        for version, row in rows.items()
    }


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
            answers = yaml.safe_load(answers_path.read_text(encoding="utf-8")) or {}
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
    def support(self) -> Support:
        table = support_table()
        version = str(self.answers.get("pyembed_version") or max(table, key=_version_key))
        if version not in table:
            raise HookError(
                f"pyembed {version} (from {ANSWERS_FILE}) is not in the template's "
                f"support table, which knows {', '.join(sorted(table))}.",
                "Run `copier update --trust --data pyembed_version=...` with a supported one.",
            )
        return table[version]

    @property
    def artifact_dir(self) -> Path:
        return self.root / "target" / "out"


def _version_key(version: str) -> Version:
    return tuple(int(part) for part in version.split("."))
