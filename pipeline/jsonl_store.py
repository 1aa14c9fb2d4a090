"""An append-only store of keyed JSON records: one line per record, flushed and synced as it is
written, so a process killed at any moment loses nothing it had recorded.

The last line for a key wins. A line cut short by a kill is ignored on load (and counted); the
next record starts on a fresh line. Used for paid LLM answers and for the resume log of feature
sets: both must survive a kill and both only ever grow.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class JsonlStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.records: dict[str, dict] = {}
        self.damaged_lines = 0
        if self.path.is_file():
            for line in self.path.read_text(errors="replace").splitlines():
                try:
                    record = json.loads(line)
                    self.records[record["key"]] = record
                except (ValueError, KeyError, TypeError):
                    self.damaged_lines += 1

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def __len__(self) -> int:
        return len(self.records)

    def get(self, key: str) -> dict | None:
        return self.records.get(key)

    def put(self, key: str, record: dict) -> None:
        self.records[key] = append_record(self.path, key, record)


def append_record(path: Path, key: str, record: dict) -> dict:
    """Append one keyed record to the store at `path` without loading it; returns the record."""
    record = dict(record, key=key)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=True) + "\n"
    with open(path, "a+b") as f:
        f.seek(0, os.SEEK_END)
        if f.tell():  # after a kill mid-line, start on a fresh line
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                line = "\n" + line
        f.write(line.encode())
        f.flush()
        os.fsync(f.fileno())
    return record
