"""The feature store: CLIP embeddings in Parquet shards that describe themselves.

A feature set is a folder:

    shard-00000.parquet ...   shard k holds input rows [k*S, (k+1)*S) (S = shard_rows), zstd;
                              id columns + `embedding` (fixed-size list of float16 or float32)
                              and, for text sets asked for them, `tokens` (the text tower's
                              per-token states, a list of fixed-size lists: no padding stored);
                              its schema metadata holds the fingerprint, the shard's place in the
                              plan, the key of its inputs and the rows that were skipped
    manifest.json             fingerprint, width, precision, rows, input hash, shard checksums,
                              the errors table; written last, so a folder without it is unfinished

Shards are written under a temporary name and renamed when complete, so a killed run leaves only
whole shards behind. A rerun plans the same shards, keeps each one whose key (a hash of exactly
the inputs of its rows) and header still match, and computes only the rest: the result is the
one an uninterrupted run writes. Readers check the fingerprint against the CLIP the caller expects
and refuse features made by another model, and check every shard's bytes against the checksum the
manifest recorded, hashing the bytes they parse (each shard is read once).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.clip.fingerprint import check_same_clip
from pipeline.common import (InputError, JsonlStore, append_record, atomic_path, sha256_file,
                             write_json)

EMBEDDING = "embedding"
TOKENS = "tokens"
MANIFEST = "manifest.json"
PRECISIONS = {"float16": (np.float16, pa.float16()), "float32": (np.float32, pa.float32())}
HEADER_KEY = b"fgvc.header"


@dataclasses.dataclass(frozen=True)
class RaggedTokens:
    """Per-token states of N texts, on the host: values (T, W), offsets (N + 1,) int64."""

    values: np.ndarray
    offsets: np.ndarray

    def __post_init__(self):
        if self.offsets.ndim != 1 or self.offsets[0] != 0 or self.offsets[-1] != len(self.values):
            raise ValueError(f"offsets must run from 0 to {len(self.values)} (the token rows)")
        if (np.diff(self.offsets) < 1).any():
            raise ValueError("every text needs at least one token")

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def width(self) -> int:
        return self.values.shape[1]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def row(self, i: int) -> np.ndarray:
        """The (L_i, W) token states of text i."""
        return self.values[self.offsets[i]:self.offsets[i + 1]]

    @classmethod
    def from_rows(cls, rows: list[np.ndarray], width: int) -> RaggedTokens:
        """Stack per-text (L_i, W) arrays."""
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum([len(r) for r in rows], out=offsets[1:])
        values = np.concatenate(rows) if rows else np.zeros((0, width), np.float16)
        return cls(values, offsets)


def hash_table(table: pd.DataFrame) -> str:
    """A content hash of a table (values and column names, not the index)."""
    digest = hashlib.sha256(",".join(map(str, table.columns)).encode())
    digest.update(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def shard_file(index: int) -> str:
    return f"shard-{index:05d}.parquet"


@dataclasses.dataclass(frozen=True)
class ShardPlan:
    """How a feature set is cut into shards, and what identifies each shard's inputs.

    `inputs` has one row per input row with everything the embedding of that row depends on
    (ids and text, or ids, path and file size); shard k's key is the hash of its rows, written
    into the shard. `local` adds facts that only hold on this machine (file modification
    times): they decide whether a shard can be kept on resume, through a resume log beside the
    folder, but never enter the shard, so the same inputs give the same bytes on any machine.
    """

    name: str
    fingerprint: dict
    width: int
    precision: str
    shard_rows: int
    keys: tuple[str, ...]
    rows: int
    input_hash: str
    variant: dict = dataclasses.field(default_factory=dict)  # e.g. the image decoder used
    local_keys: tuple[str, ...] = ()  # per shard: inputs + machine-local facts; () if none
    token_width: int | None = None  # width of per-token states stored beside each embedding

    @classmethod
    def build(cls, inputs: pd.DataFrame, *, name: str, fingerprint: dict, width: int,
              precision: str, shard_rows: int, variant: dict | None = None,
              local: pd.DataFrame | None = None, token_width: int | None = None) -> ShardPlan:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        if shard_rows < 1:
            raise ValueError(f"shard_rows must be >= 1, got {shard_rows}")
        inputs = inputs.reset_index(drop=True)
        starts = range(0, len(inputs), shard_rows)
        keys = tuple(hash_table(inputs.iloc[s:s + shard_rows]) for s in starts)
        local_keys = ()
        if local is not None:
            both = pd.concat([inputs, local.reset_index(drop=True).add_prefix("local.")], axis=1)
            local_keys = tuple(hash_table(both.iloc[s:s + shard_rows]) for s in starts)
        return cls(name, fingerprint, int(width), precision, int(shard_rows), keys, len(inputs),
                   hash_table(inputs), dict(variant or {}), local_keys,
                   None if token_width is None else int(token_width))

    @property
    def num_shards(self) -> int:
        return len(self.keys)

    def span(self, index: int) -> tuple[int, int]:
        """The input rows [start, stop) of shard `index`."""
        start = index * self.shard_rows
        return start, min(start + self.shard_rows, self.rows)

    def span_rows(self, index: int) -> int:
        start, stop = self.span(index)
        return stop - start

    def header(self) -> dict:
        """What every shard of this plan shares; a shard with another header is stale."""
        header = {"name": self.name, "fingerprint": self.fingerprint, "width": self.width,
                  "precision": self.precision, "shard_rows": self.shard_rows,
                  "variant": self.variant}
        if self.token_width is not None:  # absent, not null: sets without tokens are unchanged
            header["token_width"] = self.token_width
        return header


@dataclasses.dataclass
class ShardInfo:
    index: int
    rows: int  # embeddings in the shard (its span minus skipped rows)
    key: str
    errors: list[dict]  # {"row": input row, "reason": why it was skipped}
    sha256: str

    def record(self, plan: ShardPlan) -> dict:
        start, stop = plan.span(self.index)
        return {"file": shard_file(self.index), "index": self.index, "start": start, "stop": stop,
                "rows": self.rows, "key": self.key, "sha256": self.sha256}


def write_shard(folder: Path, plan: ShardPlan, index: int, ids: pd.DataFrame,
                embeddings: np.ndarray, errors: list[dict] | None = None,
                tokens: RaggedTokens | None = None) -> ShardInfo:
    """Write shard `index` (ids and embeddings of its span's kept rows, in row order, and their
    token states if the plan has them) atomically."""
    errors = sorted(errors or [], key=lambda e: e["row"])
    start, stop = plan.span(index)
    if len(ids) + len(errors) != stop - start:
        raise ValueError(f"shard {index} spans {stop - start} rows but got {len(ids)} embeddings "
                         f"and {len(errors)} skipped rows")
    if embeddings.shape != (len(ids), plan.width):
        raise ValueError(f"embeddings {embeddings.shape} do not match {len(ids)} ids x width "
                         f"{plan.width}")
    dtype, arrow_type = PRECISIONS[plan.precision]
    values = pa.array(np.ascontiguousarray(embeddings, dtype=dtype).reshape(-1), type=arrow_type)
    table = pa.Table.from_pandas(ids.reset_index(drop=True), preserve_index=False).append_column(
        EMBEDDING, pa.FixedSizeListArray.from_arrays(values, plan.width))
    if (tokens is None) != (plan.token_width is None):
        raise ValueError(f"shard {index}: the plan {'has' if plan.token_width else 'has no'} token "
                         "states, the call the opposite")
    if tokens is not None:
        table = table.append_column(TOKENS, _token_column(tokens, plan, len(ids)))
    header = dict(plan.header(), index=index, start=start, stop=stop, key=plan.keys[index],
                  errors=errors)
    table = table.replace_schema_metadata({
        HEADER_KEY: json.dumps(header, sort_keys=True),
        "fgvc.fingerprint": json.dumps(plan.fingerprint, sort_keys=True),
        "fgvc.width": str(plan.width), "fgvc.precision": plan.precision})
    with atomic_path(Path(folder) / shard_file(index)) as tmp:
        pq.write_table(table, tmp, compression="zstd")
        info = ShardInfo(index, len(ids), plan.keys[index], errors, sha256_file(tmp))
        # logged before the rename: a shard under its final name has a record of its checksum
        # even when the run is killed before it writes the manifest
        record = {"input_key": plan.keys[index], "sha256": info.sha256}
        if plan.local_keys:
            record["local_key"] = plan.local_keys[index]
        append_record(resume_log_path(folder), str(index), record)
    return info


def _token_column(tokens: RaggedTokens, plan: ShardPlan, rows: int) -> pa.ListArray:
    if len(tokens) != rows or tokens.width != plan.token_width:
        raise ValueError(f"token states of {len(tokens)} texts x width {tokens.width} do not match "
                         f"{rows} ids x token width {plan.token_width}")
    dtype, arrow_type = PRECISIONS[plan.precision]
    values = pa.array(np.ascontiguousarray(tokens.values, dtype=dtype).reshape(-1), type=arrow_type)
    return pa.ListArray.from_arrays(pa.array(tokens.offsets, pa.int32()),
                                    pa.FixedSizeListArray.from_arrays(values, plan.token_width))


def resume_log_path(folder: Path) -> Path:
    """Beside the feature set, not in it: machine-local facts stay out of what DVC hashes.
    Append-only (`JsonlStore`): one line per written shard, however many shards there are."""
    folder = Path(folder)
    return folder.parent / f".{folder.name}.resume.jsonl"


def _read_header(path: Path) -> dict | None:
    try:
        metadata = pq.read_metadata(path)
        header = json.loads(metadata.metadata[HEADER_KEY])
        header["num_rows"] = metadata.num_rows
        return header
    except (OSError, KeyError, TypeError, ValueError, pa.ArrowException):
        return None  # unreadable or not ours: recompute


OWN_FILE = re.compile(r"^(shard-\d{5}\.parquet|manifest\.json|errors\.json)(\.tmp)?$")
SHARD_NAME = re.compile(r"^shard-\d{5}\.parquet$")


@dataclasses.dataclass
class Resumed:
    kept: dict[int, ShardInfo]  # by index
    # shards that matched the plan but not the checksum recorded when they were written
    # (damaged since): deleted, to be computed again
    damaged: list[str]


def resume(folder: Path, plan: ShardPlan) -> Resumed:
    """Keep the shards in `folder` that this plan would write again; delete the rest of ours.

    A shard is kept when its header (model fingerprint, width, precision, shard size, variant)
    and the key of its inputs match the plan, its row count adds up, and its bytes still have
    the checksum recorded when it was written: in the set's manifest, or else in the resume log
    every shard is recorded in as it is written (a killed run's folder has no manifest). A shard
    damaged since is computed again, never adopted; so is a shard with no record anywhere (a
    manifest never adopts a checksum it did not compute from what it encoded). Temp files, stale shards and the manifest (rewritten at the end) are removed.
    A folder holding anything else is not a feature set (a mistyped --out?) and is refused before
    anything is deleted.
    """
    folder = Path(folder)
    kept: dict[int, ShardInfo] = {}
    damaged: list[str] = []
    if not folder.is_dir():
        return Resumed(kept, damaged)
    foreign = sorted(p.name for p in folder.iterdir() if not (p.is_file() and OWN_FILE.match(p.name)))
    if foreign:
        more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        raise InputError(f"{folder} holds files that are not part of a feature set "
                         f"({', '.join(foreign[:5])}{more}): refusing to write features there (pick "
                         "an empty folder or this set's own)")
    log = JsonlStore(resume_log_path(folder))
    recorded = _recorded_checksums(folder)
    for path in sorted(folder.iterdir()):
        header = _read_header(path) if path.suffix == ".parquet" else None
        index = header.get("index") if header else None
        if (header is not None and isinstance(index, int) and 0 <= index < plan.num_shards
                and path.name == shard_file(index)
                and {k: header.get(k) for k in plan.header()} == plan.header()
                and header.get("key") == plan.keys[index]
                and header.get("token_width") == plan.token_width  # absent on both: None
                and header["num_rows"] + len(header["errors"]) == plan.span_rows(index)):
            checksum = sha256_file(path)
            expected = recorded.get(path.name) or _logged_checksum(log, plan, index)
            if expected is not None and expected != checksum:
                damaged.append(path.name)
            elif expected is not None and _locally_current(log, plan, index, checksum):
                kept[index] = ShardInfo(index, header["num_rows"], header["key"],
                                        header["errors"], checksum)
                continue
        path.unlink()
    return Resumed(kept, damaged)


def _recorded_checksums(folder: Path) -> dict[str, str]:
    """shard file -> the checksum its set's manifest recorded; {} without a readable manifest
    (a killed run's folder, or a damaged manifest: then the shards' headers are all there is)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        return {str(shard["file"]): str(shard["sha256"]) for shard in manifest["shards"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _logged_checksum(log: JsonlStore, plan: ShardPlan, index: int) -> str | None:
    """The checksum this machine logged when it wrote shard `index` from the plan's inputs."""
    entry = log.get(str(index)) or {}
    return entry.get("sha256") if entry.get("input_key") == plan.keys[index] else None


def _locally_current(log: JsonlStore, plan: ShardPlan, index: int, checksum: str) -> bool:
    """With machine-local facts in the plan, a shard is kept only if this machine wrote it from
    inputs that still have them (a pulled or copied shard is recomputed: the safe side)."""
    if not plan.local_keys:
        return True
    entry = log.get(str(index)) or {}
    return entry.get("local_key") == plan.local_keys[index] and entry.get("sha256") == checksum


def write_manifest(folder: Path, plan: ShardPlan, shards: dict[int, ShardInfo],
                   error_ids: pd.DataFrame | None = None) -> dict:
    """Write manifest.json for a finished feature set; `error_ids` adds ids to skipped rows."""
    missing = sorted(set(range(plan.num_shards)) - set(shards))
    if missing:
        raise ValueError(f"feature set {plan.name} is missing shards {missing[:10]}")
    ordered = [shards[i] for i in range(plan.num_shards)]
    errors = [dict(e) for shard in ordered for e in shard.errors]
    if error_ids is not None:
        for error in errors:
            error.update({k: _plain(v) for k, v in error_ids.iloc[error["row"]].items()})
    manifest = dict(plan.header(), rows=sum(s.rows for s in ordered), input_rows=plan.rows,
                    input_hash=plan.input_hash, skipped=len(errors),
                    shards=[s.record(plan) for s in ordered], errors=errors)
    write_json(Path(folder) / MANIFEST, manifest)
    return manifest


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def write_feature_set(folder: Path, ids: pd.DataFrame, embeddings: np.ndarray, *, name: str,
                      fingerprint: dict, shard_rows: int, precision: str,
                      inputs: pd.DataFrame | None = None) -> dict:
    """Write a whole in-memory feature set at once (shards + manifest).

    `inputs` is what identifies each row's input for resuming (default: `ids` itself)."""
    plan = ShardPlan.build(ids if inputs is None else inputs, name=name, fingerprint=fingerprint,
                           width=embeddings.shape[1], precision=precision, shard_rows=shard_rows)
    ids = ids.reset_index(drop=True)
    shards = {}
    for index in range(plan.num_shards):
        start, stop = plan.span(index)
        shards[index] = write_shard(folder, plan, index, ids.iloc[start:stop],
                                    embeddings[start:stop])
    return write_manifest(folder, plan, shards)


@dataclasses.dataclass
class FeatureSet:
    ids: pd.DataFrame  # one row per embedding
    embeddings: np.ndarray  # (N, D) float32
    manifest: dict
    tokens: RaggedTokens | None = None  # per-token states (stored precision), if asked for


REBUILD = "re-run `extract` for it (or `dvc checkout` it from the cache)"


def damaged(path: Path, why: str) -> InputError:
    """The one line for a damaged file of a feature set: what is wrong and how to rebuild it."""
    return InputError(f"{path} is damaged ({why}): {REBUILD}")


def read_manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise InputError(f"no finished feature set at {folder} (no {MANIFEST}): the `extract` "
                         "stage makes it")
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise damaged(path, f"not JSON: {error}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("shards"), list):
        raise damaged(path, "no list of shards")
    wrong = _manifest_problem(manifest)
    if wrong:
        raise damaged(path, wrong)
    return manifest


def _manifest_problem(manifest: dict) -> str | None:
    """What a manifest that parses lacks for a reader (a hand edit, a bad merge), or None."""
    for key, kind in (("fingerprint", dict), ("width", int), ("rows", int), ("precision", str)):
        if not isinstance(manifest.get(key), kind):
            return f"no {kind.__name__} {key!r}"
    for i, shard in enumerate(manifest["shards"]):
        if not (isinstance(shard, dict) and isinstance(shard.get("file"), str)
                and SHARD_NAME.match(shard["file"]) and isinstance(shard.get("sha256"), str)):
            return f"shard entry {i} has no file name and sha256 of a shard"
    return None


def check_fingerprint(manifest: dict, expected: dict | None, where: Path) -> None:
    """Refuse features made by another CLIP than `expected` (the one in use)."""
    check_same_clip(expected, manifest["fingerprint"], f"the feature set {where}",
                    "extract it again with this CLIP (the `extract` stage)")


def iter_shards(folder: Path, expected_fingerprint: dict | None = None, *,
                verify: bool = True) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """Stream a feature set shard by shard as (ids, (n, D) float32 embeddings): memory stays at
    one shard however large the set. Every shard is checked against its manifest checksum
    (`verify=False` skips that: only for measuring what it costs, `fgvc bench read`)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    check_fingerprint(manifest, expected_fingerprint, folder)
    for table in _shard_tables(folder, manifest, verify):
        yield _ids(table), _embeddings(table, manifest["width"])


def _shard_tables(folder: Path, manifest: dict, verify: bool) -> Iterator[pa.Table]:
    """Each shard of the manifest, in order. Verified, a shard's bytes are read once, hashed and
    parsed from the same buffer: no second pass over the file (a shard is one buffer in memory,
    tens of MB at the presets' shard size)."""
    for shard in manifest["shards"]:
        path = folder / shard["file"]
        try:
            if verify:
                data = path.read_bytes()
                if hashlib.sha256(data).hexdigest() != shard["sha256"]:
                    raise damaged(path, f"its bytes do not have the checksum the manifest of the "
                                        f"feature set {folder} recorded")
                table = pq.read_table(pa.BufferReader(data))
            else:
                table = pq.read_table(path, memory_map=True)
        except FileNotFoundError:
            raise InputError(f"{path} is missing, though {MANIFEST} lists it: {REBUILD}") from None
        except (OSError, pa.ArrowException) as error:
            raise damaged(path, str(error)) from None
        yield table


def _ids(table: pa.Table) -> pd.DataFrame:
    return table.drop([c for c in (EMBEDDING, TOKENS) if c in table.column_names]).to_pandas()


def _embeddings(table: pa.Table, width: int) -> np.ndarray:
    values = table.column(EMBEDDING).combine_chunks().values
    return values.to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(table), width)


def _token_states(table: pa.Table, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A shard's token states: values (T, W) as stored, lengths (n,)."""
    column = table.column(TOKENS).combine_chunks()
    values = column.flatten().values.to_numpy(zero_copy_only=False).reshape(-1, width)
    return values, np.diff(column.offsets.to_numpy())


def read_feature_set(folder: Path, expected_fingerprint: dict | None = None, *,
                     verify: bool = True, tokens: bool = False) -> FeatureSet:
    """Load a feature set as one (N, D) float32 array plus its id table, and with `tokens` its
    per-token states (in their stored precision: float16 by default keeps them half the size).
    Every shard's bytes are checked against the manifest's checksum as they are read (a damaged
    one is one `InputError` naming it and how to rebuild the set; `verify=False` skips the check,
    only for measuring what it costs: `fgvc bench read`).

    The float32 array is filled shard by shard, so peak memory is the result plus one shard;
    token states are gathered per shard and joined at the end (twice their size at the peak)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    check_fingerprint(manifest, expected_fingerprint, folder)
    if tokens and manifest.get("token_width") is None:
        raise InputError(f"{folder} holds no per-token states: extract it again with "
                         "extract.texts.tokens: true")
    embeddings = np.empty((manifest["rows"], manifest["width"]), np.float32)
    ids, token_values, token_lengths, done = [], [], [], 0
    for table in _shard_tables(folder, manifest, verify):
        embeddings[done:done + len(table)] = _embeddings(table, manifest["width"])
        ids.append(_ids(table))
        if tokens:
            values, lengths = _token_states(table, manifest["token_width"])
            token_values.append(values)
            token_lengths.append(lengths)
        done += len(table)
    if done != manifest["rows"]:
        raise damaged(folder / MANIFEST, f"it says {manifest['rows']} rows, its shards hold {done}")
    table = pd.concat(ids, ignore_index=True) if ids else pd.DataFrame()
    ragged = None
    if tokens:
        offsets = np.zeros(done + 1, np.int64)
        np.cumsum(np.concatenate(token_lengths) if token_lengths else [], out=offsets[1:])
        values = (np.concatenate(token_values) if token_values
                  else np.zeros((0, manifest["token_width"]), PRECISIONS[manifest["precision"]][0]))
        ragged = RaggedTokens(values, offsets)
    return FeatureSet(table, embeddings, manifest, ragged)
