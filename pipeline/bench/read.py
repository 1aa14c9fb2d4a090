"""What does verifying a feature set's shards cost its readers? `read_feature_set` with its
default check (each shard's bytes read once, hashed with SHA-256 and parsed from the same buffer)
against the same call with `verify=False` (the shards memory-mapped and parsed, nothing hashed),
on a random set written by the store's own writer, timed in one run, interleaved.

The default size is COCO's captions, the largest set the pipeline reads: 113,287 images of the
Karpathy train + restval splits x 5 captions = 566,435 rows, width 512 (ViT-B-32), float16, in
shards of 16,384 rows (the cub-paper preset's `extract.shard_rows`). Random embeddings are what
the timing needs: zstd saves little on random float16 values (547 MB of shards for 580 MB of
embeddings at the default size), so the hash sees about as many bytes as the rows hold.

The shards were just written, so they are read from the page cache: the figures are the reader's
own cost, hashing and parsing, not the disk's (a cold read adds about the same disk time to both
ways).
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

COCO_CAPTIONS = {"rows": 113_287 * 5, "width": 512, "shard_rows": 16_384}
WAYS = ("unverified", "verified")  # the baseline first: the table reads as its overhead
GOAL = 0.10  # issue 23: verifying costs under 10% of the read


@dataclasses.dataclass
class ReadBench:
    rows: int
    width: int
    precision: str
    shards: int
    shard_rows: int
    megabytes: float  # the shards' bytes on disk
    seconds: dict[str, list[float]]  # way -> each repetition's time, in the order they ran
    hash_seconds: list[float]  # SHA-256 of every shard's bytes alone, each repetition

    def best(self, way: str) -> float:
        return min(self.seconds[way])

    def median(self, way: str) -> float:
        return statistics.median(self.seconds[way])

    @property
    def ratio(self) -> float:
        """verified / unverified, best against best."""
        return self.best("verified") / self.best("unverified")

    @property
    def median_ratio(self) -> float:
        return self.median("verified") / self.median("unverified")

    @property
    def overhead(self) -> float:
        return self.ratio - 1

    def report(self) -> str:
        repeats = len(self.seconds["verified"])
        lines = [f"{self.rows:,} rows x width {self.width} ({self.precision}) in {self.shards} "
                 f"shard(s) of {self.shard_rows:,} rows, {self.megabytes:,.0f} MB, read "
                 f"{repeats} time(s) each way, interleaved",
                 f"{'read':<12} {'best s':>8} {'median s':>9} {'MB/s':>8}"]
        lines += [f"{way:<12} {self.best(way):8.3f} {self.median(way):9.3f} "
                  f"{self.megabytes / self.best(way):8,.0f}" for way in WAYS]
        hashing = min(self.hash_seconds)
        lines.append(f"{'sha256 only':<12} {hashing:8.3f} {statistics.median(self.hash_seconds):9.3f} "
                     f"{self.megabytes / hashing:8,.0f}")
        at_coco_size = (self.rows, self.width, self.shard_rows) == tuple(COCO_CAPTIONS.values())
        goal = f" (goal at COCO's size: under {GOAL:.0%})" if at_coco_size else ""
        lines.append(f"verified / unverified = {self.ratio:.3f} (best), {self.median_ratio:.3f} "
                     f"(median): verifying costs {100 * self.overhead:+.1f}% of the read{goal}")
        return "\n".join(lines)

    def as_json(self) -> dict:
        return dict(dataclasses.asdict(self), ratio=self.ratio, median_ratio=self.median_ratio,
                    overhead=self.overhead, best={w: self.best(w) for w in WAYS},
                    median={w: self.median(w) for w in WAYS})


def write_random_set(folder: Path, rows: int, width: int, shard_rows: int, precision: str,
                     seed: int) -> dict:
    """A feature set of `rows` random embeddings, with COCO captions' id columns (image_id,
    caption_index: 5 a picture), written by `write_feature_set`. Returns its manifest."""
    from pipeline.features.store import PRECISIONS, write_feature_set

    dtype = PRECISIONS[precision][0]
    rng = np.random.default_rng(seed)
    embeddings = np.empty((rows, width), dtype)
    for start in range(0, rows, shard_rows):  # drawn a shard at a time: no float64 copy of all
        stop = min(start + shard_rows, rows)
        embeddings[start:stop] = rng.standard_normal((stop - start, width), np.float32)
    row = np.arange(rows)
    ids = pd.DataFrame({"image_id": row // 5, "caption_index": row % 5})
    fingerprint = {"model_name": "bench", "pretrained": None, "weights_sha256": None,
                   "embed_dim": width}
    return write_feature_set(folder, ids, embeddings, name="bench_read", fingerprint=fingerprint,
                             shard_rows=shard_rows, precision=precision)


def bench_read(*, rows: int, width: int, shard_rows: int, precision: str, repeats: int,
               seed: int = 0, workdir: Path | None = None) -> ReadBench:
    """Write a random set in a temporary folder (under `workdir`, default the system's), then
    read it `repeats` times each way, alternating which way goes first; the folder is removed."""
    from pipeline.common import InputError
    from pipeline.features.store import PRECISIONS, read_feature_set

    if precision not in PRECISIONS:
        raise InputError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    with tempfile.TemporaryDirectory(prefix="fgvc-bench-read-", dir=workdir) as tmp:
        folder = Path(tmp) / "bench_read"
        manifest = write_random_set(folder, rows, width, shard_rows, precision, seed)
        shards = [folder / shard["file"] for shard in manifest["shards"]]
        megabytes = sum(p.stat().st_size for p in shards) / 1e6
        read_feature_set(folder, verify=False)  # warm-up: imports, allocator, page cache
        seconds: dict[str, list[float]] = {way: [] for way in WAYS}
        hash_seconds = []
        for repeat in range(repeats):
            for way in (WAYS if repeat % 2 == 0 else WAYS[::-1]):
                gc.collect()
                start = time.perf_counter()
                features = read_feature_set(folder, verify=way == "verified")
                seconds[way].append(time.perf_counter() - start)
                del features
            start = time.perf_counter()
            for path in shards:
                hashlib.sha256(path.read_bytes()).hexdigest()
            hash_seconds.append(time.perf_counter() - start)
    return ReadBench(rows, width, precision, len(shards), shard_rows, megabytes, seconds,
                     hash_seconds)
