"""Two experiments side by side: every Table-1 cell of A and of B, B - A, and the params that
differ, so a reader sees at once what changed and what it did. Pure pandas: the caller loads
each experiment's `table1.csv` and params (from git, DVC experiments or the workspace)."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from pipeline.report.labels import DESCRIPTIONS, SOURCES, source_label, text_kind
from pipeline.report.tables import format_number, sort_cells

CELL_KEYS = ["selection", "text_source", "image_ratio"]
ABSENT = "(absent)"


def compare_table1(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """One row per Table-1 cell of either table: top1_a, top1_b and diff = top1_b - top1_a;
    cells of each backbone apart where both tables name their backbone.

    A cell only one side has (e.g. B added the global selection) keeps NaN on the other side
    rather than disappearing, so a comparison never hides what one experiment lacks.
    """
    for name, table in (("A", a), ("B", b)):
        missing = [c for c in CELL_KEYS + ["top1"] if c not in table.columns]
        if missing:
            raise ValueError(f"{name}'s Table 1 lacks the columns {missing}")
    keys = (["backbone"] if "backbone" in a and "backbone" in b else []) + CELL_KEYS
    # older table1.csv files wrote ratios as 100.00: compare whole percents
    a, b = (t.astype({"image_ratio": int}) for t in (a, b))
    merged = a[keys + ["top1"]].merge(b[keys + ["top1"]], on=keys, how="outer",
                                      suffixes=("_a", "_b"), validate="one_to_one")
    merged["text_ratio"] = 100 - merged["image_ratio"]
    merged["diff"] = merged["top1_b"] - merged["top1_a"]
    merged = sort_cells(merged)
    if "backbone" not in merged:
        merged["backbone"] = ""
    order = {name: i for i, name in enumerate(dict.fromkeys(merged["backbone"]))}
    merged = merged.sort_values("backbone", key=lambda c: c.map(order), kind="stable",
                                ignore_index=True)
    return merged[["backbone", "selection", "image_ratio", "text_ratio", "text_source",
                   "top1_a", "top1_b", "diff"]]


def flatten_params(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested params as dotted keys (`train_adapter.lr`), the names `dvc exp run -S` takes.
    Lists stay whole values: `selection: [a, b]` is one setting."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten_params(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def params_diff(a: dict[str, Any], b: dict[str, Any]) -> pd.DataFrame:
    """The params whose values differ between A and B (a key only one side has included),
    sorted by name: columns param, a, b (ABSENT where a side lacks the key)."""
    flat_a, flat_b = flatten_params(a), flatten_params(b)
    rows = [(key, flat_a.get(key, ABSENT), flat_b.get(key, ABSENT))
            for key in sorted(flat_a.keys() | flat_b.keys())
            if key not in flat_a or key not in flat_b or flat_a[key] != flat_b[key]]
    return pd.DataFrame(rows, columns=["param", "a", "b"])


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text.replace("|", "\\|").replace("\n", " ")


def dataset_of(params: dict[str, Any]) -> str:
    """What an experiment's test set is, from its params: '<format> <root>/<path>'."""
    data = params.get("data") or {}
    target = data.get("target") or {}
    if not target:
        return "(its params name no dataset)"
    return f"{target.get('format')} {data.get('root')}/{target.get('path')}"


def text_kind_of(params: dict[str, Any]) -> str:
    """What an experiment's description columns hold, from its params (the adapters' set's
    backend, in the report's words); "descriptions" where its params do not say."""
    name = (params.get("train_adapter") or {}).get("descriptions")
    describe = params.get("describe") or {}
    for section in ("sets", "files", "controls"):
        entry = (describe.get(section) or {}).get(name)
        if isinstance(entry, dict):
            return text_kind("control" if section == "controls" else entry.get("backend"))
    return DESCRIPTIONS


def source_names(kinds: tuple[str, str] | None) -> dict[str, str]:
    """Table 1's column names for the comparison: each side's kind of descriptions where both
    agree, else both named ('image + descriptions (A: LLM descriptions; B: ...)')."""
    if kinds and kinds[0] == kinds[1]:
        return {s: source_label(s, kinds[0]) for s in SOURCES}
    names = {s: source_label(s) for s in SOURCES}
    if kinds:
        for s in ("descriptions", "descriptions_unmapped"):
            names[s] += f" (A: {kinds[0]}; B: {kinds[1]})"
    return names


def mismatches(cells: pd.DataFrame, datasets: tuple[str, str] | None) -> list[str]:
    """What makes B − A compare unlike things: another dataset, other backbones."""
    found = []
    if datasets and datasets[0] != datasets[1]:
        found.append(f"A and B are not the same dataset (A: {datasets[0]}; B: {datasets[1]}): "
                     "B − A compares different test sets")
    sides = [set(cells.loc[cells[f"top1_{k}"].notna(), "backbone"]) - {""} for k in "ab"]
    if all(sides) and sides[0] != sides[1]:
        found.append(f"A and B have other backbones (A: {', '.join(sorted(sides[0]))}; B: "
                     f"{', '.join(sorted(sides[1]))}): their cells are not compared")
    return found


def compare_markdown(cells: pd.DataFrame, params: pd.DataFrame, name_a: str, name_b: str,
                     datasets: tuple[str, str] | None = None,
                     kinds: tuple[str, str] | None = None) -> str:
    """The comparison as Markdown: what each side ran on, a loud warning where the two are not
    comparable, per selection a row per cell, then the differing params. B − A is computed from
    the tables' unrounded values (table1.csv keeps 4 decimals). kinds: what each side's
    description columns hold (`text_kind_of` its params)."""
    names = source_names(kinds)
    a, b = _value(name_a), _value(name_b)
    lines = [f"# Table 1: {a} (A) vs {b} (B)", ""]
    if datasets:
        lines += [f"A: {_value(datasets[0])}; B: {_value(datasets[1])}.", ""]
    lines += [f"**WARNING: {_value(line)}.**" for line in mismatches(cells, datasets)]
    lines += ["Top-1 % of the adapter per Table-1 cell; B − A in points."]
    both = cells.dropna(subset=["diff"])
    if len(both):
        lines.append(f"Over the {len(both)} cells both have: mean B − A {both['diff'].mean():+.2f}, "
                     f"from {both['diff'].min():+.2f} to {both['diff'].max():+.2f}.")
    for (backbone, selection), group in cells.groupby(["backbone", "selection"], sort=False):
        heading = (f"backbone {backbone}, selection {selection}" if backbone
                   else f"selection: {selection}")
        lines += ["", f"## {heading}", "",
                  f"| (image, text) % | source | A: {a} | B: {b} | B − A |", "|---|---|---|---|---|"]
        for row in group.itertuples():
            lines.append(f"| ({row.image_ratio}, {row.text_ratio}) | "
                         f"{names.get(row.text_source, row.text_source)} | "
                         f"{format_number(row.top1_a)} | {format_number(row.top1_b)} | {format_number(row.diff, '{:+.2f}')} |")
    lines += ["", "## params that differ", ""]
    if params.empty:
        lines.append("None: A and B have the same params.")
    else:
        lines += [f"| param | A: {a} | B: {b} |", "|---|---|---|"]
        lines += [f"| {row.param} | {_value(row.a)} | {_value(row.b)} |"
                  for row in params.itertuples()]
    return "\n".join(lines) + "\n"
