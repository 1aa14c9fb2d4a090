"""Stage `describe`: class descriptions into <out> (class_id, class_name, text, source,
prompt_id, sample_index), from the backend named in params."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from stages.common import PARAMS_OPTION, params_or_exit, read_parquet_with_metadata, write_parquet


def main(index: Path = typer.Option(Path("artifacts/data/index"), help="Index tables of `data`."),
         out: Path = typer.Option(Path("artifacts/describe/descriptions.parquet"),
                                  help="The descriptions table to write."),
         params: Path = PARAMS_OPTION) -> None:
    """Write class descriptions (offline from class attributes; LLM backends to come)."""
    from pipeline.describe.attributes import describe_from_attributes

    config = params_or_exit(params).describe
    if config.backend != "attributes":
        print(f"error: describe.backend {config.backend!r} is not available in this version; "
              "use 'attributes'", file=sys.stderr)
        raise typer.Exit(2)
    attributes, _ = read_parquet_with_metadata(index / "cub_attributes.parquet")
    classes, _ = read_parquet_with_metadata(index / "cub_classes.parquet")
    table = describe_from_attributes(
        attributes, classes, samples_per_class=config.samples_per_class,
        traits_per_sample=config.attributes.traits_per_sample,
        min_percent=config.attributes.min_percent, seed=config.seed)
    write_parquet(table, out)
    print(f"describe: {len(table)} descriptions for {table['class_id'].nunique()} classes "
          f"(backend {config.backend}); e.g. {table['text'].iloc[0]!r}")
