"""Named sets of CLIP prompt templates, and the prompts they make for a list of classes.

A template has one `{}` slot for the class name ("a photo of a {}, a type of bird."). A set is
either a YAML file `{description: str, templates: [str, ...]}` in the templates folder, named by
its stem, or `open_clip:<LIST>`, one of the lists in `open_clip.zero_shot_metadata` (CLIP's 80
ImageNet templates are `open_clip:OPENAI_IMAGENET_TEMPLATES`), read from the installed package
rather than copied, so they stay exactly CLIP's.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from pipeline.common import InputError

OPEN_CLIP_PREFIX = "open_clip:"


def _open_clip_sets() -> dict[str, list[str]]:
    """`open_clip:<LIST>` -> its templates as `{}` strings, for every `*_TEMPLATES` list of
    callables that `open_clip.zero_shot_metadata` exposes. Imported here, not at the top: open_clip
    takes seconds to import and most callers read a YAML set."""
    from open_clip import zero_shot_metadata

    sets = {}
    for name, value in sorted(vars(zero_shot_metadata).items()):
        if (name.endswith("_TEMPLATES") and isinstance(value, (list, tuple))
                and all(callable(t) for t in value)):
            # each is `lambda c: f"a photo of a {c}."`: called with "{}", it is our template
            sets[OPEN_CLIP_PREFIX + name] = [t("{}") for t in value]
    return sets


def template_set_names(folder: Path) -> list[str]:
    """Every set `load_template_set` knows: the YAML files' stems in `folder`, sorted, then the
    open_clip lists."""
    folder = Path(folder)
    stems = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
    return stems + list(_open_clip_sets())


def check_templates(templates: object, source: str) -> list[str]:
    """The templates if they are a non-empty list of texts with exactly one `{}` each."""
    if (not isinstance(templates, list) or not templates
            or not all(isinstance(t, str) for t in templates)):
        raise InputError(f"{source}: `templates` must be a non-empty list of texts")
    for template in templates:
        if template.count("{}") != 1:
            raise InputError(f"{source}: template {template!r} must contain exactly one {{}} "
                             f"(the class name's slot)")
    return templates


def load_template_set(name: str, folder: Path) -> list[str]:
    """The templates of the set `name`: `open_clip:<LIST>` or `<folder>/<name>.yaml`."""
    folder = Path(folder)
    if name.startswith(OPEN_CLIP_PREFIX):
        sets = _open_clip_sets()
        if name not in sets:
            raise InputError(f"unknown template set {name!r}; open_clip has: {', '.join(sets)}")
        return sets[name]
    path = folder / f"{name}.yaml"
    if not path.is_file():
        raise InputError(f"template set {name!r} does not exist ({path} is missing); available: "
                         f"{', '.join(template_set_names(folder))}")
    try:
        raw = yaml.safe_load(path.read_text())
    except (ValueError, yaml.YAMLError) as error:  # UnicodeDecodeError is a ValueError
        detail = " ".join(str(error).split())
        raise InputError(f"{path} is not valid YAML: {detail}") from None
    if not isinstance(raw, dict) or "templates" not in raw:
        raise InputError(f"{path}: expected a mapping {{description: text, templates: [texts]}}")
    if not isinstance(raw.get("description", ""), str):
        raise InputError(f"{path}: `description` must be a text")
    unknown = set(raw) - {"description", "templates"}
    if unknown:
        raise InputError(f"{path}: unknown key(s) {', '.join(sorted(unknown))} (known: "
                         "description, templates)")
    return check_templates(raw["templates"], str(path))


def class_prompts(templates: list[str], class_names: list[str]) -> pd.DataFrame:
    """Every template filled with every class name, class by class: columns `class_index`
    (position in `class_names`), `template_index` and `text`."""
    check_templates(list(templates), "class_prompts")
    rows = [(c, t, template.replace("{}", name))
            for c, name in enumerate(class_names) for t, template in enumerate(templates)]
    return pd.DataFrame(rows, columns=["class_index", "template_index", "text"]).astype(
        {"class_index": "int64", "template_index": "int64", "text": "object"})
