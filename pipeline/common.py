"""What several packages of the library share: the error a user can fix, atomic file writers,
file checksums, an append-only JSONL store, and how class names compare (the index's reference
lists and imported descriptor files meet a dataset's classes by one rule). Every stage depends
on this file: what only some packages share lives in one of them (the learning-rate schedule
in `pipeline.clip.training`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml


class InputError(ValueError):
    """Something the user gave is wrong (a file, a folder, a setting, an artifact made for
    another model), not a bug in the code. Its message says what and how to fix it, in one line:
    the command line prints it as it is, without a traceback, and exits with `exit_code`."""

    exit_code = 1


# --- user files: a key given twice is refused, never the last one silently kept -------------

class UniqueKeyLoader(yaml.SafeLoader):
    """YAML that refuses a key given twice in one mapping (plain YAML keeps the last):
    `yaml.load(text, Loader=UniqueKeyLoader)`."""


def _unique_mapping(loader: UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"the key {key!r} is given twice", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def unique_keys(pairs: list[tuple]) -> dict:
    """JSON that refuses a key given twice in one object (plain JSON keeps the last):
    `json.loads(text, object_pairs_hook=unique_keys)`; a ValueError names the key."""
    found = {}
    for key, value in pairs:
        if key in found:
            raise ValueError(f"the key {key!r} is given twice")
        found[key] = value
    return found


# --- names -----------------------------------------------------------------------------------


def normalize_name(name: str) -> str:
    """'001.Black_footed_Albatross', 'Black-footed Albatross' -> 'black footed albatross'."""
    name = re.sub(r"^\d+\.", "", name.strip())
    name = re.sub(r"[-_\s]+", " ", name.replace("'", "").replace("\u2019", ""))
    return name.strip().lower()


# --- files -----------------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Gives the temporary name (`<name>.tmp`, folder created) to write `path` under; renamed to
    `path` when the block ends without an error, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    yield tmp
    tmp.replace(path)


def write_bytes(path: Path, content: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(content)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: Path, content: dict | list) -> None:
    write_text(path, json.dumps(content, indent=2) + "\n")


def write_parquet(path: Path, table: pd.DataFrame, metadata: dict[str, str] | None = None) -> None:
    """Write a table (zstd) under a temporary name, then rename; `metadata` goes into the schema."""
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    if metadata:
        arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), **metadata})
    with atomic_path(path) as tmp:
        pq.write_table(arrow, tmp, compression="zstd")


def read_parquet_with_metadata(path: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """A table and its schema metadata (pandas' own entry left out)."""
    table = pq.read_table(path)
    metadata = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()
                if not k.startswith(b"pandas")}
    return table.to_pandas(), metadata


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- an append-only store ----------------------------------------------------------------------

class JsonlStore:
    """Keyed JSON records, one line each, flushed and synced as they are written, so a process
    killed at any moment loses nothing it had recorded. The last line for a key wins. A line cut
    short by a kill is ignored on load (and counted); the next record starts on a fresh line.
    Used for paid LLM answers and for the resume log of feature sets: both must survive a kill
    and only ever grow."""

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


# --- cost up front -----------------------------------------------------------------------------

LONG_ON_CPU = 3600.0  # seconds: a job this long on the CPU gets a loud warning before it starts


def cpu_cost_warning(device: str, count: int, seconds_each, what: str, fix: str) -> str | None:
    """What to say, before it starts, when a job on the CPU would take hours (`count` x
    `seconds_each()`, a timing on this machine, taken only on the CPU), and what to do instead:
    `device: auto` falls back to the CPU where torch sees no GPU, and a preset-size job there
    takes hours or days. None for a GPU job or a short one."""
    if str(device) != "cpu":
        return None
    each = seconds_each()
    total = count * each
    if total < LONG_ON_CPU:
        return None
    hours = total / 3600
    span = f"{hours:.1f} hours" if hours < 48 else f"{hours / 24:.1f} days"
    return (f"WARNING: running on the CPU, this would take about {span} from scratch "
            f"({count:,} {what} at {each:.3g} s each, measured here). {fix}")
