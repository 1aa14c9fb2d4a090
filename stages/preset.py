"""Command `preset`: write params.yaml from the defaults and a preset (not a DVC stage).

Every default is declared once, in the library's settings sections; params.yaml is them written
out, with what each means as comments (`fgvc preset demo`: the defaults are the offline demo's).
A preset, `presets/<name>.yaml`, holds only what differs from the defaults (or, with
`extends: <other preset>`, from that preset); named entries (`clip.backbones`, `describe.sets`,
`data.demo`, ...) and registry entries (`zeroshot.baselines`, `train_adapter.methods`) and the
target (`data.target`) are replaced whole, everything else merged key by key. A bad override is
refused with one line naming the preset and the key.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import typer
import yaml
from pydantic import BaseModel

from pipeline.config import Section, is_whole
from stages.layout import PARAMS_YAML
from stages.params import Params, ParamsError, read_yaml, validate_params

PRESETS = Path("presets")
DEMO = "demo"  # the defaults themselves
WIDTH = 100
HEADER = ("Every setting of the pipeline, validated when a stage loads this file (one line per "
          "mistake, naming the key). Written by `fgvc preset {name}`{source}: the defaults, "
          "declared once in the library (pipeline/<package>/settings.py){changes}. Edit it "
          "freely, or switch with `fgvc preset <name>` (presets/*.yaml hold only what differs).")


def main(name: str = typer.Argument(DEMO, help="demo (the defaults: the offline demo) or a "
                                    "preset in presets/ (cub-paper, stanford-cars, ...)."),
         out: Path = typer.Option(PARAMS_YAML, "--out", help="The params file to write."),
         presets: Path = typer.Option(PRESETS, help="Folder of the preset files.")) -> None:
    """Write params.yaml: the defaults, with a preset's changes applied (presets/<name>.yaml)."""
    text = render_params(preset(name, presets), name, presets)
    old = out.read_text() if out.is_file() else None
    if old is not None and old != text:
        backup = out.with_name(out.name + ".bak")
        backup.write_text(old)
        print(f"preset: the old {out} is kept as {backup}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(out)
    print(f"preset: wrote {out} ({name})")


def preset(name: str, folder: Path = PRESETS) -> Params:
    """The defaults with preset `name` applied (`demo`: the defaults)."""
    return validate_params(preset_tree(name, Path(folder)), _source(name, Path(folder)))


def preset_tree(name: str, folder: Path, seen: tuple[str, ...] = ()) -> dict:
    """The defaults as a mapping, with preset `name` (and the ones it extends) merged in."""
    if name == DEMO:
        return Params().model_dump()
    if name in seen:
        chain = " -> ".join(seen + (name,))
        raise ParamsError(f"{_source(name, folder)}: extends itself ({chain})")
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
        raise ParamsError(f"{path}: no such preset (known: {', '.join([DEMO] + known)})")
    changes = read_yaml(path)
    base = changes.pop("extends", DEMO)
    return merge(preset_tree(str(base), folder, seen + (name,)), changes, Params)


def merge(tree: dict, changes: dict, model: type[BaseModel] | None) -> dict:
    """`changes` merged into `tree` key by key, except where `model` says a field is replaced
    whole (named entries, registry entries, the target)."""
    merged = dict(tree)
    for key, value in changes.items():
        field = model.model_fields.get(key) if model else None
        inner = field.annotation if field and isinstance(field.annotation, type) else None
        if (isinstance(value, dict) and isinstance(merged.get(key), dict)
                and not (field and is_whole(field))):
            sub = inner if inner and issubclass(inner, BaseModel) else None
            merged[key] = merge(merged[key], value, sub)
        else:
            merged[key] = value
    return merged


def _source(name: str, folder: Path) -> str:
    return "the defaults" if name == DEMO else str(folder / f"{name}.yaml")


# --- writing params.yaml ---------------------------------------------------------------------

def render_params(params: Params, name: str = DEMO, folder: Path = PRESETS) -> str:
    """params.yaml for `params`, every key with what it means as a comment."""
    source = "" if name == DEMO else f" from {folder / f'{name}.yaml'}"
    changes = "" if name == DEMO else " with that preset's changes"
    lines = textwrap.wrap(HEADER.format(name=name, source=source, changes=changes), WIDTH - 2,
                          initial_indent="# ", subsequent_indent="# ")
    for key in type(params).model_fields:
        lines.append("")
        _entry(lines, key, getattr(params, key), _doc(type(params).model_fields[key],
                                                     getattr(params, key)), 0)
    return "\n".join(lines) + "\n"


def _doc(field, value) -> str:
    if field.description:
        return field.description
    if isinstance(value, Section) and type(value).__doc__:
        return " ".join(type(value).__doc__.split())
    return ""


def _entry(lines: list[str], key: str, value, doc: str, indent: int) -> None:
    pad = " " * indent
    if isinstance(value, Section):
        flow = _flow(value)
        if flow is not None and not type(value).model_fields:
            _line(lines, f"{pad}{key}: {flow}", doc, pad)
            return
        _line(lines, f"{pad}{key}:", doc, pad)
        for name, field in type(value).model_fields.items():
            _entry(lines, name, getattr(value, name), _doc(field, getattr(value, name)),
                   indent + 2)
        return
    if isinstance(value, dict) and value and all(isinstance(v, Section) for v in value.values()):
        _line(lines, f"{pad}{key}:", doc, pad)
        for name, entry in value.items():
            flow = _flow(entry, drop_none=True)
            if flow is not None and len(f"{pad}  {name}: {flow}") <= WIDTH:
                _line(lines, f"{pad}  {name}: {flow}", "", pad + "  ")
            else:
                _entry(lines, name, entry, " ".join((type(entry).__doc__ or "").split()),
                       indent + 2)
        return
    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
        _line(lines, f"{pad}{key}:", doc, pad)  # named plain entries (data.targets): one a line
        for name, entry in value.items():
            _line(lines, f"{pad}  {name}: {_scalar(entry)}", "", pad + "  ")
        return
    _line(lines, f"{pad}{key}: {_scalar(value)}", doc, pad)


def _flow(section: Section, drop_none: bool = False) -> str | None:
    """A section as one flow mapping (`{model: ViT-B-32, pretrained: openai}`), if all its
    values are scalars or lists of scalars; `drop_none`: leave out unset optional keys."""
    items = []
    for name, field in type(section).model_fields.items():
        value = getattr(section, name)
        if isinstance(value, (Section, dict)):
            return None
        if drop_none and value is None and not field.is_required():
            continue
        items.append(f"{name}: {_scalar(value)}")
    return "{" + ", ".join(items) + "}"


def _scalar(value) -> str:
    if isinstance(value, dict) and not value:
        return "{}"
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False)
    return text.strip().removesuffix("...").strip()


def _line(lines: list[str], text: str, doc: str, pad: str) -> None:
    """`text  # doc`, or the doc on lines of its own above where that would be too wide."""
    if doc and len(text) + 4 + len(doc) <= WIDTH:
        lines.append(f"{text}  # {doc}")
        return
    if doc:
        lines += textwrap.wrap(doc, WIDTH - len(pad) - 2, initial_indent=f"{pad}# ",
                               subsequent_indent=f"{pad}# ")
    lines.append(text)
