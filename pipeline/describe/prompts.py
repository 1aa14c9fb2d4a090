"""Prompt templates and the parsing of their answers into descriptions.

A template is a system instruction (optional), a user message with a `{class_name}` slot, and how
its answer is read: `sentences` (prose; each sentence one description) or `list` (a "- " list, as
CBD asks for; each item a descriptor, turned into "<class>, which has <descriptor>" by CBD's rule).
The papers' prompts are files in the repo's `prompts/describe/` folder, one YAML file each
(`description`, `system`, `user`, `parse`): `load_prompt` reads and checks one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import yaml

from pipeline.common import InputError


@dataclasses.dataclass(frozen=True)
class PromptTemplate:
    name: str
    user: str  # with one {class_name}
    system: str | None = None
    parse: str = "sentences"  # sentences | list

    def messages(self, class_name: str) -> list[dict[str, str]]:
        user = self.user.replace("{class_name}", class_name)
        return ([{"role": "system", "content": self.system}] if self.system else []) + [
            {"role": "user", "content": user}]

    def descriptions(self, class_name: str, answer: str, truncated: bool = False) -> list[str]:
        """The descriptions in one answer (empty when there are none). `truncated`: the answer
        was cut off at max_tokens, so its last item or sentence is a fragment and is dropped."""
        if self.parse == "list":
            # CBD's prompt ends in "-": the answer's first line is the first item, unbulleted.
            continues = self.user.rstrip().endswith("-")
            items = parse_list(answer, continues)
            return [descriptor_sentence(class_name, d) for d in items[:-1 if truncated else None]]
        sentences = parse_sentences(answer)
        if truncated and sentences and not answer.rstrip().endswith((".", "!", "?")):
            sentences = sentences[:-1]
        return sentences


def load_prompt(name: str, folder: Path) -> PromptTemplate:
    """The prompt `folder/<name>.yaml`, checked: a `user` message with a {class_name} slot, an
    optional `system` message, `parse` sentences or list."""
    path = Path(folder) / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in Path(folder).glob("*.yaml"))
        raise InputError(f"no prompt {name!r}: {path} does not exist (prompts in {folder}: "
                         f"{', '.join(known) or 'none'})")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise InputError(f"{path} is not valid YAML ({' '.join(str(error).split())})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("user"), str):
        raise InputError(f"{path}: expected a mapping with a `user` message")
    unknown = set(raw) - {"description", "system", "user", "parse"}
    if unknown:
        raise InputError(f"{path}: unknown key(s) {', '.join(sorted(unknown))} (known: "
                         "description, system, user, parse)")
    if "{class_name}" not in raw["user"]:
        raise InputError(f"{path}: the user message must contain {{class_name}}")
    parse = raw.get("parse", "sentences")
    if parse not in ("sentences", "list"):
        raise InputError(f"{path}: parse must be 'sentences' or 'list' (got {parse!r})")
    system = raw.get("system")
    if system is not None and not isinstance(system, str):
        raise InputError(f"{path}: system must be a text or null")
    return PromptTemplate(name, raw["user"], system, parse)


def rendered_hash(messages: list[dict[str, str]]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()


_BULLET = re.compile(r"^\s*(?:[-\u2022\u2023\u2013\u2014]\s*|\*\s+|\(?\d{1,3}[.):]\s+)(.*)$")
_NEXT_QUESTION = re.compile(r"^\s*(?:Q|A|Question|Answer)\s*:", re.IGNORECASE)


def _clean(text: str) -> str:
    text = re.sub(r"\*\*|__", "", text)  # markdown bold
    text = re.sub(r"\s+", " ", text).strip()
    return text.rstrip(" .;,:")


def parse_list(answer: str, first_line_is_item: bool = False) -> list[str]:
    """Items of a bulleted or numbered list, robust to blank lines, a lead-in sentence, an echoed
    "A: ..." line, items wrapped onto the next line, trailing text after the list and a model
    that goes on to ask the next "Q:"."""
    items: list[str] = []
    for number, line in enumerate(answer.splitlines()):
        if _NEXT_QUESTION.match(line):
            if items:
                break
            continue  # an echoed "A: There are several useful visual features ...:"
        match = _BULLET.match(line)
        if match:
            items.append(_clean(match.group(1)))
        elif not line.strip():
            continue
        elif number == 0 and first_line_is_item and not line.rstrip().endswith(":"):
            items.append(_clean(line))
        elif items and line.strip()[0].islower():
            items[-1] = _clean(items[-1] + " " + line)  # an item wrapped onto the next line
        elif items:
            break  # trailing prose after the list
    seen, unique = set(), []
    for item in items:
        if item and item.lower() not in seen:
            seen.add(item.lower())
            unique.append(item)
    return unique


def parse_sentences(answer: str) -> list[str]:
    """Sentences of a prose answer, each at least three words long; a list item is a sentence
    of its own even without a full stop."""
    lines = []
    for line in answer.splitlines():
        match = _BULLET.match(line)
        if match:
            item = _clean(match.group(1))
            lines.append(item + "." if item and item[-1] not in ".!?" else item)
        else:
            lines.append(re.sub(r"\*\*|__", "", line))
    text = re.sub(r"\s+", " ", " ".join(lines)).strip()
    sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])", text)
    out = []
    for sentence in sentences:
        sentence = sentence.strip()
        if len(sentence.split()) >= 3:
            out.append(sentence if sentence[-1] in ".!?" else sentence + ".")
    return out


def descriptor_sentence(class_name: str, descriptor: str) -> str:
    """CBD's descriptor -> text rule, exactly as its code has it (so CBD's numbers reproduce):
    "<class>, which is a seabird", "<class>, which has long, narrow wings". Its tests are on
    characters, not words: "always ..." and "and neck ..." also take "which is"."""
    if descriptor.startswith("a") or descriptor.startswith("an"):
        clause = f"which is {descriptor}"
    elif descriptor.startswith(("has", "often", "typically", "may", "can")):
        clause = f"which {descriptor}"
    elif descriptor.startswith("used"):
        clause = f"which is {descriptor}"
    else:
        clause = f"which has {descriptor}"
    return f"{class_name}, {clause}"
