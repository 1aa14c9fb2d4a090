"""An append-only cache of LLM answers: one JSON line per answered request, flushed and synced
as each answer arrives, so a killed run loses nothing it paid for.

Lines are keyed by `request_key` (backend, server host, model, rendered prompt, class, sample
index, temperature, max_tokens). A line cut short by a kill is ignored on load (and reported);
the next answer starts on a fresh line. Only usable answers are stored: an empty or unparseable
answer is asked again next time, never replayed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def request_key(**fields) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


class AnswerCache:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.answers: dict[str, dict] = {}
        self.damaged_lines = 0
        if self.path.is_file():
            for line in self.path.read_text(errors="replace").splitlines():
                try:
                    record = json.loads(line)
                    self.answers[record["key"]] = record
                except (ValueError, KeyError, TypeError):
                    self.damaged_lines += 1

    def __contains__(self, key: str) -> bool:
        return key in self.answers

    def __len__(self) -> int:
        return len(self.answers)

    def get(self, key: str) -> dict | None:
        return self.answers.get(key)

    def put(self, key: str, record: dict) -> None:
        record = dict(record, key=key)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, sort_keys=True) + "\n"
        with open(self.path, "a+b") as f:
            f.seek(0, os.SEEK_END)
            if f.tell():  # after a kill mid-line, start on a fresh line
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    line = "\n" + line
            f.write(line.encode())
            f.flush()
            os.fsync(f.fileno())
        self.answers[key] = record
