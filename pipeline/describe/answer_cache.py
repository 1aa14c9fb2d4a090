"""The cache of LLM answers: a `JsonlStore` of one record per answered request.

Records are keyed by `request_key` (backend, server host, model, rendered prompt, class, sample
index, temperature, max_tokens). Only usable answers are stored: an empty or unparseable answer
is asked again next time, never replayed.
"""

from __future__ import annotations

import hashlib
import json

from pipeline.common import JsonlStore


def request_key(**fields) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


class AnswerCache(JsonlStore):
    """Answers by request key; `get(key)["answer"]` is the raw text the model returned."""
