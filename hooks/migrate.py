"""Changes a three-way merge cannot make, run by Copier's `_migrations` on every
`copier update` (and by the after-copy task when a PyOxidizer project is
adopted). Each checks for what it fixes, so running it again, or on a project
that never needed it, changes nothing, and no version tag is needed.

`.cargo/config` -> `.cargo/config.toml`: Cargo deprecated the name without
extension. Projects from `pyoxidizer init-rust-project` (and early templates)
have it; when both files exist Cargo reads the old one and warns. The user's
settings move into `.cargo/config.toml`; only the boilerplate comments, which
config.toml explains anew, are dropped.

During an update, Copier deletes the files only the old template version had
before its `after` stage, so the move takes two steps: before the update the
settings are saved beside it (STASH, a file Cargo does not read and Copier
does not touch), after it they are merged into `.cargo/config.toml`.
"""

from __future__ import annotations

from pathlib import Path

from .report import say

OLD = Path(".cargo") / "config"
NEW = Path(".cargo") / "config.toml"
STASH = Path(".cargo") / "config.settings-to-move.toml"
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


def without_repeated_comments(moved: str, existing: str) -> str:
    """The moved settings without the comment lines config.toml already has
    (the boilerplate blocks both files were generated with), blank lines
    collapsed."""
    have = {line.strip() for line in existing.splitlines() if line.strip().startswith("#")}
    kept = [line for line in moved.splitlines() if line.strip() not in have]
    text = "\n".join(kept)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip("\n") + "\n" if text.strip() else ""


def save_cargo_config(project: Path) -> bool:
    """Before an update: keep the settings of .cargo/config in STASH, since
    Copier may delete the file itself. True when something was saved."""
    old = project / OLD
    moved = settings(old.read_text(encoding="utf-8")) if old.is_file() else ""
    if not moved:
        return False
    (project / STASH).write_text(moved, encoding="utf-8")
    return True


def cargo_config(project: Path) -> bool:
    """Move .cargo/config (or the settings saved from it) into
    .cargo/config.toml; True when something changed."""
    old, new, stash = project / OLD, project / NEW, project / STASH
    changed = False
    for source in (stash, old):
        if not source.is_file():
            continue
        existing = new.read_text(encoding="utf-8") if new.is_file() else ""
        moved = without_repeated_comments(settings(source.read_text(encoding="utf-8")), existing)
        if moved:
            if moved.strip() not in existing:
                separator = "" if not existing or existing.endswith("\n") else "\n"
                new.write_text(existing + separator + MOVED_HEADER + moved, encoding="utf-8")
                say(f"Moved the settings of {OLD} into {NEW} (Cargo's current name for it).")
        elif source == old:
            say(f"Removed {OLD}: it held only comments, which {NEW} carries anew.")
        source.unlink()
        changed = True
    return changed
