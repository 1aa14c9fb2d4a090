"""What every stage does the same way: load its params, pick a device, write files atomically."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import typer

from stages.params import Params, ParamsError, load_params

PARAMS_OPTION = typer.Option("params.yaml", "--params", help="The params file to read.")


def params_or_exit(path: Path | str) -> Params:
    """Validated params, or the problems on stderr and exit code 2 (no traceback)."""
    try:
        return load_params(path)
    except ParamsError as error:
        print(f"error: invalid params\n{error}", file=sys.stderr)
        raise typer.Exit(2) from None


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        print("error: device 'cuda' asked for in params, but torch sees no CUDA GPU", file=sys.stderr)
        raise typer.Exit(2)
    return device


def write_parquet(table: pd.DataFrame, path: Path, metadata: dict[str, str] | None = None) -> None:
    """Write a table under a temporary name, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    if metadata:
        arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), **metadata})
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(arrow, tmp, compression="zstd")
    tmp.replace(path)


def write_bytes(path: Path, content: bytes) -> None:
    """Write under a temporary name, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(content)
    tmp.replace(path)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(content: dict, path: Path) -> None:
    write_text(path, json.dumps(content, indent=2) + "\n")


def read_parquet_with_metadata(path: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    table = pq.read_table(path)
    metadata = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()
                if not k.startswith(b"pandas")}
    return table.to_pandas(), metadata
