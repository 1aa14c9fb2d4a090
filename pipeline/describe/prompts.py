"""Prompt templates and the parsing of their answers into descriptions.

A template is a system instruction (optional), a user message with a `{class_name}` slot, and how
its answer is read: `sentences` (prose; each sentence one description) or `list` (a "- " list, as
CBD asks for; each item a descriptor, turned into "<class>, which has <descriptor>" by CBD's rule).
The defaults below are the papers' prompts; params.yaml holds editable copies.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re

PAPER_SYSTEM = (
    "You are very knowledgeable about bird species, and when given a certain breed, you want to "
    "output sentences describing the only bird's visual characteristics such as size, shape, "
    "coloration and bill shape and size.")

_CBD_EXAMPLES = """Q: What are useful visual features for distinguishing a lemur in a photo?
A: There are several useful visual features to tell there is a lemur in a photo:
- four-limbed primate
- black, grey, white, brown, or red-brown
- wet and hairless nose with curved nostrils
- long tail
- large eyes
- furry bodies
- clawed hands and feet

Q: What are useful visual features for distinguishing a television in a photo?
A: There are several useful visual features to tell there is a television in a photo:
- electronic device
- black or grey
- a large, rectangular screen
- a stand or mount to support the screen
- one or more speakers
- a power cord
- input ports for connecting to other devices
- a remote control

"""

_SOOTY_ALBATROSS = """Q: What are useful visual features for distinguishing a Sooty Albatross in a photo?
A: There are several useful visual features to tell there is a Sooty Albatross in a photo:
- dark grey or sooty plumage overall
- thinner, darker bill compared to other albatrosses
- white rings around the eyes
- long, narrow wings with a slight upward curve at the tips
- shorter tail than other albatross species
- often a lighter grey or white throat area

"""

_SOOTY_ALBATROSS_BACKGROUND = _SOOTY_ALBATROSS.replace(
    "- often a lighter grey or white throat area\n",
    "- often a lighter grey or white throat area\n"
    "- solitary or in small groups, usually found over open ocean\n")

_CBD_QUESTION = """Q: What are useful features for distinguishing a {class_name} in a photo?
A: There are several useful visual features to tell there is a {class_name} in a photo:
-"""

_CBD_BACKGROUND_QUESTION = """Q: What are useful visual features, including the typical background or habitat, for distinguishing a {class_name} in a photo?
A: There are several useful visual features to tell there is a {class_name} in a photo:
-"""

DEFAULT_PROMPTS = {
    "paper": {"system": PAPER_SYSTEM, "user": "{class_name}", "parse": "sentences"},
    "cbd": {"system": None, "user": _CBD_EXAMPLES + _CBD_QUESTION, "parse": "list"},
    "cbd_domain": {"system": None, "user": _SOOTY_ALBATROSS + _CBD_QUESTION, "parse": "list"},
    "cbd_domain_background": {"system": None,
                              "user": _SOOTY_ALBATROSS_BACKGROUND + _CBD_BACKGROUND_QUESTION,
                              "parse": "list"},
}


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
