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
PARAMS_YAML = Path("params.yaml")


class MissingInput(InputError):
    """A stage's input does not exist: the stage that makes it has not run."""


def _paths() -> dict:
    return _paths_in(Path.cwd())


@functools.lru_cache(maxsize=8)
def _paths_in(folder: Path) -> dict:
    try:
        declared = yaml.safe_load((folder / DVC_YAML).read_text())
    except FileNotFoundError:
        raise InputError(f"no {DVC_YAML} in {folder}: run fgvc in the project's root folder, "
                         "or give every path on the command line") from None
    except yaml.YAMLError as error:
        raise InputError(f"{folder / DVC_YAML} is not valid YAML ({' '.join(str(error).split())})"
                         ) from None
    blocks = declared.get("vars", []) if isinstance(declared, dict) else []
    for block in blocks if isinstance(blocks, list) else []:
        if isinstance(block, dict) and isinstance(block.get("paths"), dict):
            return block["paths"]
    raise InputError(f"{DVC_YAML} has no `vars: - paths:` block naming the artifact paths")


def artifact(stage: str, name: str | None = None) -> Path:
    """The path dvc.yaml names for `stage`'s output (`name`: which one, for a stage with
    several), e.g. artifact("train_qformer", "checkpoint")."""
    entry = _paths().get(stage)
    if isinstance(entry, dict):
        entry = entry.get(name)
    if not isinstance(entry, str) or "${" in entry:
        what = f"paths.{stage}" + (f".{name}" if name else "")
        raise InputError(f"{DVC_YAML} does not name {what} as a plain path in its `vars: - paths:` "
                         "block")
    return Path(entry)


def artifact_option(stage: str, name: str | None = None, *, help: str,
                    flag: str | None = None) -> Path:
    """A typer option (`flag`, default: the parameter's name) defaulting to `artifact(stage,
    name)`, read when the command runs; --help shows the path where a dvc.yaml is at hand."""
    return typer.Option(..., *([flag] if flag else []), default_factory=lambda: artifact(stage, name),
                        show_default=shown_path(stage, name), help=help)


def backbone_path(stage: str, backbone: str, *parts: str) -> Path:
    """<paths.stage>/<backbone>/<parts>: where a per-backbone stage of no target writes (clip,
    train_qformer)."""
    return artifact(stage).joinpath(backbone, *parts)


def target_path(stage: str, target: str, *parts: str) -> Path:
    """<paths.stage>/<target>/<parts>: where a stage of one target writes (`extract`:
    <target>/<backbone>/<feature set>; `data`'s index: <target>)."""
    return artifact(*STAGE_PATHS.get(stage, (stage,))).joinpath(target, *parts)


STAGE_PATHS = {"data": ("data", "index")}  # a stage whose paths entry has several names


def backbone_option(stage: str, *parts: str, help: str, flag: str | None = None,
                    target: bool = True):
    """An option whose default, `<paths.stage>/<target>/<backbone>/<parts>` (`target`: False,
    no <target>), the command computes from its target and backbone (`None` here)."""
    shown = "/".join([shown_path(stage), *(["<target>"] if target else []), "<backbone>", *parts])
    return typer.Option(None, *([flag] if flag else []), show_default=shown, help=help)


def target_option(stage: str, *parts: str, help: str, flag: str | None = None):
    """An option whose default, `<paths.stage>/<target>/<parts>`, the command computes from its
    target (`None` here)."""
    name = STAGE_PATHS.get(stage, (stage, None))
    shown = "/".join([shown_path(*name), "<target>", *parts])
    return typer.Option(None, *([flag] if flag else []), show_default=shown, help=help)


def set_kind(name: str, describe) -> str:
    """The subfolder of a target's describe folder that holds set `name` (`describe`: the
    params section): controls/ for a control, sets/ for the real sets (their controls' input)."""
    return "controls" if describe.section_of(name) == "controls" else "sets"


def set_table(folder: Path, name: str, describe) -> Path:
    """Where description set `name` lies in a target's describe folder: <kind>/<name>.parquet
    (`set_kind`), or <name>.parquet in a flat folder of sets (as `fgvc describe --out` writes
    by hand) where that is what there is."""
    nested = Path(folder) / set_kind(name, describe) / f"{name}.parquet"
    flat = Path(folder) / f"{name}.parquet"
    return flat if flat.is_file() and not nested.exists() else nested


def shown_path(stage: str, name: str | None = None) -> str:
    """`artifact(stage, name)` for --help texts, or where it would be named."""
    try:
        return str(artifact(stage, name))
    except InputError:
        return f"paths.{stage}{f'.{name}' if name else ''} of dvc.yaml"


def describe_stage(name: str, describe, target: str) -> str:
    """The stage that writes description set `name` of `target` (`describe`: the params
    section): describe_file@<name> for an imported file, describe_control@<target>-<name> for
    a control, describe@<target>-<name> otherwise."""
    section = describe.section_of(name)
    if section == "files":
        return f"describe_file@{name}"
    return f"{'describe_control' if section == 'controls' else 'describe'}@{target}-{name}"


def paths_entry(stage: str) -> str:
    """The `paths` entry a stage (group) writes into: describe_file@ and describe_control@
    write describe's, data_coco data's, extract_<set>@ extract's."""
    group = stage.split("@")[0]
    if group in ("describe_file", "describe_control"):
        return "describe"
    if group == "data_coco":
        return "data"
    return "extract" if group.startswith("extract_") else group


def _made_by(path: Path, stage: str) -> bool:
    """Is `path` (one of) `stage`'s output(s) in dvc.yaml's layout, or inside one?"""
    try:
        entry = _paths().get(paths_entry(stage))
    except InputError:
        return False
    outputs = entry.values() if isinstance(entry, dict) else [entry]
    return any(isinstance(out, str) and (path == Path(out) or Path(out) in path.parents)
               for out in outputs)


def require(path: Path, made_by: str) -> Path:
    """`path` if it exists; else `MissingInput` naming it and the stage that makes it (for a
    path of dvc.yaml's layout), or saying what it should hold (for a path the user gave)."""
    path = Path(path)
    if path.exists():
        return path
    if _made_by(path, made_by):
        raise MissingInput(f"{path} does not exist: the `{made_by}` stage makes it "
                           f"(dvc repro {made_by})")
    raise MissingInput(f"{path} does not exist (given on the command line: it should hold what "
                       f"the `{made_by.split('@')[0]}` stage makes)")


def require_features(features: Path, backbone: str, *sets: str, target: str | None = None
                     ) -> None:
    """Each of the feature `sets` in the folder `features` (one target's and backbone's; COCO's
    with no `target`), made by its `extract_<set>@<target>-<backbone>` stage."""
    for name in sets:
        stage = f"extract_{name}@{f'{target}-' if target else ''}{backbone}"
        require(Path(features) / name, made_by=stage)


def require_data_root(data) -> Path:
    """data.root (`data`: the params section) if it is a folder; else `MissingInput` naming the
    demo@<world> stage that draws it, or how to get real data there."""
    root = Path(data.root)
    if root.is_dir():
        return root
    if root.parent == Path(shown_path("demo")):  # where demo@<name> draws
        if root.name in data.demo:
            require(root, made_by=f"demo@{root.name}")
        raise MissingInput(f"data.root: {root} is not a folder, and data.demo draws no world "
                           f"{root.name!r} there: add it to data.demo, or point data.root at "
                           "your data")
    raise MissingInput(f"data.root: {root} is not a folder (get the datasets with `fgvc download "
                       f"{download_names(data.target)} --to {root}`, or make it a link to where "
                       "they are)")


def download_names(target) -> str:
    """What `fgvc download` fetches for a target: `all` for CUB, a suite set's name (with
    COCO for the Q-Former, and CBD's files where the set has some) for the set's preset."""
    from pipeline.sources import SOURCES, TARGETS

    for name, (format, path, _) in TARGETS.items():
        if (format, path) == (target.format, target.path):
            cbd = f"descriptors_{name}.json" in SOURCES
            return f"{name} coco karpathy" + " cbd" * cbd
    return "all"
