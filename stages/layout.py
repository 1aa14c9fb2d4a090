"""Where every artifact lives, and what to say when a stage's input is not there yet.

The paths are named once, in the `vars: paths` block of dvc.yaml, under the stage that writes
them. DVC runs each stage with them (`--out ${paths.clip}`), and every `fgvc <stage>` option
defaults to the same entry, read from the dvc.yaml of the folder the command runs in (the
project root, as under `dvc repro`). So the stages also run by hand in dvc.yaml's order, each
reading what the one before it wrote, and the two can never drift apart.
"""

from __future__ import annotations

import functools
from pathlib import Path

import typer
import yaml

from pipeline.common import InputError

DVC_YAML = Path("dvc.yaml")


class MissingInput(InputError):
    """A stage's input does not exist: the stage that makes it has not run."""


def _paths() -> dict:
    return _paths_in(Path.cwd())


@functools.lru_cache(maxsize=8)
def _paths_in(folder: Path) -> dict:
    try:
        declared = yaml.safe_load((folder / DVC_YAML).read_text()) or {}
    except FileNotFoundError:
        raise InputError(f"no {DVC_YAML} in {folder}: run fgvc in the project's root folder, "
                         "or give every path on the command line") from None
    for block in declared.get("vars", []):
        if isinstance(block, dict) and "paths" in block:
            return block["paths"]
    raise InputError(f"{DVC_YAML} has no `vars: - paths:` block naming the artifact paths")


def artifact(stage: str, name: str | None = None) -> Path:
    """The path dvc.yaml names for `stage`'s output (`name`: which one, for a stage with
    several), e.g. artifact("train_qformer", "checkpoint")."""
    entry = _paths().get(stage)
    if isinstance(entry, dict):
        entry = entry.get(name)
    if not isinstance(entry, str):
        what = f"paths.{stage}" + (f".{name}" if name else "")
        raise InputError(f"{DVC_YAML} does not name {what} in its `vars: - paths:` block")
    return Path(entry)


def artifact_option(stage: str, name: str | None = None, *, help: str,
                    flag: str | None = None) -> Path:
    """A typer option (`flag`, default: the parameter's name) defaulting to `artifact(stage,
    name)`, read when the command runs; --help shows the path where a dvc.yaml is at hand."""
    return typer.Option(..., *([flag] if flag else []), default_factory=lambda: artifact(stage, name),
                        show_default=shown_path(stage, name), help=help)


def shown_path(stage: str, name: str | None = None) -> str:
    """`artifact(stage, name)` for --help texts, or where it would be named."""
    try:
        return str(artifact(stage, name))
    except InputError:
        return f"paths.{stage}{f'.{name}' if name else ''} of dvc.yaml"


def require(path: Path, made_by: str) -> Path:
    """`path` if it exists; else `MissingInput` naming it and the stage that makes it."""
    if not Path(path).exists():
        raise MissingInput(f"{path} does not exist: the `{made_by}` stage makes it "
                           f"(dvc repro {made_by})")
    return Path(path)
