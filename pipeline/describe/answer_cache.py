"""The cache of LLM answers: a `JsonlStore` of one record per answered request.

Records are keyed by `request_key` (backend, server host, model, rendered prompt, class, sample
index, temperature, max_tokens). Only usable answers are stored: an empty or unparseable answer
is asked again next time, never replayed. One run at a time writes a cache (`one_writer`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

from pipeline.common import InputError, JsonlStore


def request_key(**fields) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


class AnswerCache(JsonlStore):
    """Answers by request key; `get(key)["answer"]` is the raw text the model returned."""


@contextlib.contextmanager
def one_writer(path: Path):
    """Hold the answer cache at `path` for one run: a second run that would write it at the same
    time stops in one line instead (two writers asked for every answer twice, stored each twice
    and wrote tables that differed). The lock is `<path>.lock`, taken with flock: the system
    drops it when the holder exits, however it exits. Over NFS, flock holds between processes of
    one machine only (NFSv3 clients may not enforce it across machines)."""
    import fcntl

    lock_path = Path(f"{path}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"the answer cache {path} is in use by another describe run (it "
                             f"holds {lock_path}): wait for it to finish (its answers are then "
                             "not asked again), or name another cache (--cache, "
                             "$FGVC_CACHE_DIR)") from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
