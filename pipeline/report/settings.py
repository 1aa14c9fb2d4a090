"""The `report` section."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipeline.config import Section


class Report(Section):
    """Table 1 and the zero-shot tables, ours beside the published numbers."""

    plot_selection: Literal["class_balanced", "global"] = Field(
        "class_balanced", description="the selection `dvc plots show` draws")
