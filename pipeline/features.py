"""The feature store: CLIP embeddings in Parquet shards that describe themselves.

A feature set is a folder:

    shard-00000.parquet ...   fixed row count, zstd; id columns + `embedding` (fixed-size list
                              of float16 or float32); schema metadata holds the fingerprint
    manifest.json             fingerprint, width, precision, rows, input hash, shard checksums;
                              written last, so a folder without it is unfinished

Every file is written under a temporary name and renamed when complete. Readers check the
fingerprint against the CLIP the caller expects and refuse features made by another model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

EMBEDDING = "embedding"
MANIFEST = "manifest.json"
PRECISIONS = {"float16": (np.float16, pa.float16()), "float32": (np.float32, pa.float32())}


class FingerprintMismatch(ValueError):
    """Features were made by a different CLIP (or preprocessing) than the caller expects."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hash_table(table: pd.DataFrame) -> str:
    """A content hash of an index table, recorded so features can be traced to their input."""
    return hashlib.sha256(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes()
                          ).hexdigest()


class ShardWriter:
    """Streams (ids, embeddings) batches into fixed-size shards; `close()` writes the manifest."""

    def __init__(self, folder: Path, *, name: str, fingerprint: dict, width: int,
                 shard_rows: int, precision: str = "float16", input_hash: str = ""):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.name, self.fingerprint, self.width = name, fingerprint, int(width)
        self.shard_rows, self.precision, self.input_hash = shard_rows, precision, input_hash
        self._pending_ids: list[pd.DataFrame] = []
        self._pending_emb: list[np.ndarray] = []
        self._pending_rows = 0
        self._shards: list[dict] = []

    def add(self, ids: pd.DataFrame, embeddings: np.ndarray) -> None:
        if embeddings.shape != (len(ids), self.width):
            raise ValueError(f"embeddings {embeddings.shape} do not match {len(ids)} ids x "
                             f"width {self.width}")
        self._pending_ids.append(ids.reset_index(drop=True))
        self._pending_emb.append(embeddings)
        self._pending_rows += len(ids)
        while self._pending_rows >= self.shard_rows:
            self._flush(self.shard_rows)

    def _flush(self, rows: int) -> None:
        ids = pd.concat(self._pending_ids, ignore_index=True)
        emb = np.concatenate(self._pending_emb)
        self._pending_ids, self._pending_emb = [ids.iloc[rows:]], [emb[rows:]]
        self._pending_rows = len(ids) - rows
        dtype, arrow_type = PRECISIONS[self.precision]
        values = pa.array(emb[:rows].astype(dtype).reshape(-1), type=arrow_type)
        table = pa.Table.from_pandas(ids.iloc[:rows], preserve_index=False).append_column(
            EMBEDDING, pa.FixedSizeListArray.from_arrays(values, self.width))
        table = table.replace_schema_metadata({
            "fgvc.fingerprint": json.dumps(self.fingerprint, sort_keys=True),
            "fgvc.width": str(self.width), "fgvc.precision": self.precision})
        file = f"shard-{len(self._shards):05d}.parquet"
        tmp = self.folder / (file + ".tmp")
        pq.write_table(table, tmp, compression="zstd")
        self._shards.append({"file": file, "rows": rows, "sha256": _sha256(tmp)})
        tmp.replace(self.folder / file)

    def close(self) -> dict:
        if self._pending_rows:
            self._flush(self._pending_rows)
        manifest = {"name": self.name, "fingerprint": self.fingerprint, "width": self.width,
                    "precision": self.precision, "rows": sum(s["rows"] for s in self._shards),
                    "input_hash": self.input_hash, "shards": self._shards}
        tmp = self.folder / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
        tmp.replace(self.folder / MANIFEST)
        return manifest


def write_feature_set(folder: Path, ids: pd.DataFrame, embeddings: np.ndarray, *, name: str,
                      fingerprint: dict, shard_rows: int = 65536, precision: str = "float16",
                      input_hash: str = "") -> dict:
    """Write a whole feature set at once; see `ShardWriter` for streaming."""
    writer = ShardWriter(folder, name=name, fingerprint=fingerprint, width=embeddings.shape[1],
                         shard_rows=shard_rows, precision=precision, input_hash=input_hash)
    writer.add(ids, embeddings)
    return writer.close()


@dataclasses.dataclass
class FeatureSet:
    ids: pd.DataFrame  # one row per embedding
    embeddings: np.ndarray  # (N, D) float32
    manifest: dict


def read_manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"no feature set at {folder} (missing {MANIFEST}): run `extract`")
    return json.loads(path.read_text())


def check_fingerprint(manifest: dict, expected: dict | None, where: Path) -> None:
    if expected is None or manifest["fingerprint"] == expected:
        return
    differs = sorted(k for k in set(expected) | set(manifest["fingerprint"])
                     if expected.get(k) != manifest["fingerprint"].get(k))
    raise FingerprintMismatch(
        f"features in {where} were made by a different CLIP than expected (differs in: "
        f"{', '.join(differs)}); re-run `extract` for this model")


def read_feature_set(folder: Path, expected_fingerprint: dict | None = None) -> FeatureSet:
    """Load a feature set as one (N, D) float32 array plus its id table."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    check_fingerprint(manifest, expected_fingerprint, folder)
    tables = [pq.read_table(folder / shard["file"]) for shard in manifest["shards"]]
    if not tables:
        return FeatureSet(pd.DataFrame(), np.zeros((0, manifest["width"]), np.float32), manifest)
    table = pa.concat_tables(tables)
    column = table.column(EMBEDDING).combine_chunks()
    embeddings = column.values.to_numpy(zero_copy_only=False).astype(np.float32).reshape(
        len(table), manifest["width"])
    return FeatureSet(table.drop([EMBEDDING]).to_pandas(), embeddings, manifest)
