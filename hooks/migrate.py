"""Changes a three-way merge cannot make, run by Copier's `_migrations` (and by
the after-copy task when a PyOxidizer project is adopted).

`.cargo/config` -> `.cargo/config.toml`: Cargo deprecated the name without
extension. Projects from `pyoxidizer init-rust-project` (and early templates)
have it; when both files exist Cargo reads the old one and warns. The user's
settings move into `.cargo/config.toml`; only the boilerplate comments, which
config.toml explains anew, are dropped.
"""

from __future__ import annotations

from pathlib import Path

from .report import say

OLD = Path(".cargo") / "config"
NEW = Path(".cargo") / "config.toml"
MOVED_HEADER = (
    "\n# Settings moved here from .cargo/config (Cargo's old name for this file)\n"
    "# by the template's migration.\n"
)


def settings(text: str) -> str:
    """The file from its first setting on: what the user wrote, without the
    leading comment block every generated copy starts with."""
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return "".join(lines[index:]).rstrip("\n") + "\n"
    return ""


def cargo_config(project: Path) -> bool:
    """Move .cargo/config into .cargo/config.toml; True when something changed."""
    old, new = project / OLD, project / NEW
    if not old.is_file():
        return False
    moved = settings(old.read_text(encoding="utf-8"))
    if moved:
        existing = new.read_text(encoding="utf-8") if new.is_file() else ""
        if moved.strip() not in existing:
            separator = "" if not existing or existing.endswith("\n") else "\n"
            new.write_text(existing + separator + MOVED_HEADER + moved, encoding="utf-8")
        say(f"Moved the settings of {OLD} into {NEW} (Cargo's current name for it).")
    else:
        say(f"Removed {OLD}: it held only comments, which {NEW} carries anew.")
    old.unlink()
    return True
