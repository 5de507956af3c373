"""Recently opened or saved files (sessions, runs, landscapes, checkpoints), most recent first,
kept in the settings as JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from PySide6 import QtCore

KEY = "recent_files"
LIMIT = 10
KINDS = {
    "session": "race session",
    "run": "training run",
    "landscape": "landscape",
    "checkpoint": "checkpoint",
    "model": "own model file",
}


@dataclass(frozen=True)
class Recent:
    kind: str  # one of KINDS
    path: str  # absolute

    @property
    def label(self) -> str:
        p = Path(self.path)
        return f"{p.name}  ({KINDS[self.kind]}, {p.parent})"


class RecentFiles:
    """The list, read from and written to ``settings`` at once (nothing is lost on a crash)."""

    def __init__(self, settings: QtCore.QSettings) -> None:
        self.settings = settings

    def entries(self) -> list[Recent]:
        try:
            raw = json.loads(str(self.settings.value(KEY, "[]")))
        except (TypeError, ValueError):
            return []
        out = []
        for item in raw if isinstance(raw, list) else []:
            if isinstance(item, dict) and item.get("kind") in KINDS and item.get("path"):
                out.append(Recent(item["kind"], str(item["path"])))
        return out[:LIMIT]

    def add(self, kind: str, path: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"Unknown kind of file {kind!r}; valid: {', '.join(KINDS)}")
        entry = Recent(kind, str(Path(path).resolve()))
        self._save([entry, *(e for e in self.entries() if e != entry)])

    def remove(self, entry: Recent) -> None:
        self._save([e for e in self.entries() if e != entry])

    def clear(self) -> None:
        self._save([])

    def _save(self, entries: list[Recent]) -> None:
        data = [{"kind": e.kind, "path": e.path} for e in entries[:LIMIT]]
        self.settings.setValue(KEY, json.dumps(data))
