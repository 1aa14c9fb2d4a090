"""What wrote each description set a report output uses: for an LLM set its model, the server
asked (host:port only), the prompt, the temperature and the completions per class; for the
others where their texts came from.

The source is each descriptions table's own Parquet metadata, `fgvc.made_by`
(`pipeline.describe.settings.Describe.made_by`, written by the describe stages), not today's
params: the report says what made the texts it scored, even after params.yaml moved on. The
server is cut to host:port again here (`server_address`), so a table written before that rule,
with a `user:password@` in its base URL, never puts credentials into a report.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.common import InputError
from pipeline.describe.settings import server_address
from pipeline.report.labels import text_kind
from pipeline.report.summary import scroll_box

METADATA_KEY = "fgvc.made_by"
COLUMNS = ["set", "texts", "model", "server", "prompt", "temperature", "samples"]
NOT_RECORDED = "not recorded"


def made_by_of(path: Path, name: str) -> dict:
    """Set `name`'s descriptions table's `fgvc.made_by` entry (its schema only is read); {}
    for a table written before the key existed (the report then says "not recorded")."""
    try:
        metadata = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid) as error:
        raise InputError(f"{path}: not a readable Parquet table ({error})") from None
    raw = metadata.get(METADATA_KEY.encode())
    if raw is None:
        return {}
    try:
        made = json.loads(raw.decode("utf-8", "replace"))
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: schema metadata {METADATA_KEY} of set {name!r} is not JSON "
                         f"({error.msg} at character {error.pos})") from None
    if not isinstance(made, dict):
        raise InputError(f"{path}: schema metadata {METADATA_KEY} of set {name!r} is not a "
                         f"mapping")
    return made


def provenance_table(made_by: dict[str, dict]) -> pd.DataFrame:
    """One row per description set (in the order given): set, texts (what kind: "LLM
    descriptions", "attribute sentences", ...), model, server, prompt, temperature, samples;
    "-" where a set's backend has no such thing, "not recorded" where its table predates
    fgvc.made_by."""
    rows = []
    for name, made in made_by.items():
        if not made:
            rows.append([name, NOT_RECORDED] + [NOT_RECORDED] * 5)
            continue
        llm = made.get("backend") == "openai"
        server = made.get("server")
        samples = made.get("samples_per_class", made.get("draws"))
        rows.append([name, text_kind(made.get("backend")),
                     str(made.get("model", "-")),
                     server_address(str(server)) if server else "-",
                     str(made.get("prompt", "-")),
                     f"{made['temperature']:g}" if llm and "temperature" in made else "-",
                     str(samples) if samples is not None else "-"])
    return pd.DataFrame(rows, columns=COLUMNS)


def provenance_markdown(table: pd.DataFrame) -> str:
    """The table as Markdown, after a heading line."""
    lines = ["Description sets (what wrote them, from each table's fgvc.made_by):", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |"
              for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def provenance_html(table: pd.DataFrame) -> str:
    """The table as HTML, in a box that scrolls sideways (`summary.scroll_box`)."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    rows = "".join("<tr>" + "".join(f'<td class="text">{html.escape(str(v))}</td>' for v in row)
                   + "</tr>" for row in table.itertuples(index=False))
    return scroll_box(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
