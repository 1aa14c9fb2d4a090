"""What identifies a CLIP's features, and the check wherever an artifact of one model meets
another's.

Features, the Q-Former and the adapter heads each record the fingerprint of the CLIP they were
made with (model name, pretrained tag, weights hash, preprocessing, width). Anything that joins
two of them compares fingerprints first: a Q-Former trained on one CLIP's features would map
another CLIP's texts into a space that means nothing there, silently.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.common import InputError

FINGERPRINT_KEYS = ("model_name", "pretrained", "weights_sha256", "embed_dim", "preprocess")
CARD_FILE = "card.json"


class FingerprintMismatch(InputError):
    """An artifact was made with a different CLIP (or preprocessing) than the one it meets."""


def fingerprint_of(card: dict) -> dict:
    """What identifies the features a CLIP makes: same fingerprint, same features."""
    return {key: card[key] for key in FINGERPRINT_KEYS}


def describe_clip(fingerprint: dict) -> str:
    """A CLIP in a few words: 'ViT-B-32 (openai, weights 1a2b3c4d5e6f)'."""
    weights = fingerprint.get("weights_sha256")
    source = fingerprint.get("pretrained") or "trained here"
    return (f"{fingerprint.get('model_name')} ({source}"
            + (f", weights {weights[:12]})" if weights else ")"))


def check_same_clip(expected: dict | None, found: dict | None, what: str, remedy: str) -> None:
    """Raise `FingerprintMismatch`, naming both models and what differs, unless `found` (the
    fingerprint `what` records; None: it records none) is `expected` (the CLIP in use).
    `expected` None skips the check."""
    if expected is None or found == expected:
        return
    if not found:
        raise FingerprintMismatch(f"{what} records no CLIP fingerprint, so nothing says it fits "
                                  f"the CLIP in use, {describe_clip(expected)}; {remedy}")
    differs = sorted(k for k in set(expected) | set(found) if expected.get(k) != found.get(k))
    raise FingerprintMismatch(
        f"{what}: made with CLIP {describe_clip(found)}, but the CLIP in use is "
        f"{describe_clip(expected)} (differs in: {', '.join(differs)}); {remedy}")


def read_card(folder: Path) -> dict:
    """The card of the CLIP resolved in `folder` (what it is, its width, its weights' hash):
    enough to check features against it without loading the model."""
    path = Path(folder) / CARD_FILE
    if not path.is_file():
        raise InputError(f"no CLIP at {folder} (no {CARD_FILE}): the `clip` stage makes it")
    return json.loads(path.read_text())
