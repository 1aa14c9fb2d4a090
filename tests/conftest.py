import os
from pathlib import Path

import pytest

# Nothing in the tests may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The real CUB metadata and CBD descriptors beside the repo (present in CI, not on clones)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real metadata folder {SHARED_DATA} is absent (only CI and developers have it)")
    return SHARED_DATA
