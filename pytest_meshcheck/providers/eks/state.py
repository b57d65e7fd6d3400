"""A small JSON record of each run, so ``meshcheck eks down --name N`` knows the region, run id
and what the run added beyond its tags (add-ons, access entries).

The record is a convenience, not the source of truth: teardown rediscovers resources by the run's
tags, and ``down`` falls back to a tag search when the record is missing.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("MESHCHECK_HOME") or Path.home() / ".meshcheck").expanduser()


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    name: str
    region: str
    run_id: str
    reused: bool = False
    profile: str = ""
    kubeconfig: str = ""
    expires_at: str = ""
    addons: tuple[str, ...] = ()
    admins: tuple[str, ...] = ()
    steps_done: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        data = json.loads(text)
        for key in ("addons", "admins", "steps_done"):
            data[key] = tuple(data.get(key, ()))
        return cls(**data)


def path_for(name: str, region: str, directory: Path | None = None) -> Path:
    return (directory or home() / "eks") / f"{region}--{name}.json"


def save(record: RunRecord, directory: Path | None = None) -> Path:
    path = path_for(record.name, record.region, directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(record.to_json(), encoding="utf-8")
    tmp.replace(path)
    return path


def load(name: str, region: str = "", directory: Path | None = None) -> RunRecord | None:
    """The record for ``name`` (in ``region`` if given, else the only one with that name)."""
    base = directory or home() / "eks"
    if region:
        candidates = [path_for(name, region, directory)]
    else:
        candidates = sorted(base.glob(f"*--{name}.json")) if base.is_dir() else []
    for candidate in candidates:
        if candidate.is_file():
            record = RunRecord.from_json(candidate.read_text(encoding="utf-8"))
            if record.name == name:
                return record
    return None


def forget(name: str, region: str, directory: Path | None = None) -> None:
    path_for(name, region, directory).unlink(missing_ok=True)
