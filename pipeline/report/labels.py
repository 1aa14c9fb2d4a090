"""One vocabulary for text sources, shared by every report output (summary.html, table1.md,
fewshot.md, zeroshot.md, the plots and `--compare`): what kind of text a description set holds
(`text_kind`: from its backend) and what a Table-1 column trains on (`source_label`).

Before, Table 1 said "image + attribute sentences" where `--compare` said "image +
descriptions", the few-shot table "descriptions (Q-Former)" and the zero-shot table "backend
attributes" for the same texts (issue 25).
"""

from __future__ import annotations

# a description set's backend -> what its texts are
TEXT_KINDS = {"openai": "LLM descriptions", "attributes": "attribute sentences",
              "cbd_json": "CBD descriptors", "file": "own descriptions",
              "control": "control texts"}
DESCRIPTIONS = "descriptions"  # a description column whose set is not known (e.g. --compare)
PAPER_TEXT_KIND = TEXT_KINDS["openai"]  # the paper's description column: GPT's descriptions
# Table 1's text sources, in the paper's order; the ablation's (no Q-Former) after them
SOURCES = ("none", "captions", "descriptions", "captions_unmapped", "descriptions_unmapped")
NO_QFORMER = ", no Q-Former"


def text_kind(backend: str | None) -> str:
    """'LLM descriptions', 'attribute sentences', ... ; the backend's own name if unknown."""
    return TEXT_KINDS.get(backend, backend or DESCRIPTIONS)


def source_label(source: str, texts: str = DESCRIPTIONS) -> str:
    """A Table-1 column: 'image only', 'image + captions', 'image + <texts>' (the adapters'
    description set's kind), '..., no Q-Former' for the ablation's."""
    base = source.removesuffix("_unmapped")
    if base not in ("none", "captions", "descriptions") or (base == "none" and base != source):
        return source
    name = {"none": "image only", "captions": "image + captions",
            "descriptions": f"image + {texts}"}[base]
    return name + (NO_QFORMER if source.endswith("_unmapped") else "")


def source_text(source: str) -> str:
    """A zero-shot row's `source` ('backend attributes', 'control of descriptors') in the same
    words: 'attribute sentences', 'control texts of descriptors'."""
    if not isinstance(source, str):
        return source
    if source.startswith("backend "):
        return text_kind(source.removeprefix("backend "))
    if source.startswith("control of "):
        return f"{TEXT_KINDS['control']} of {source.removeprefix('control of ')}"
    return source
