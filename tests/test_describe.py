from pathlib import Path

import pandas as pd
import pytest

from pipeline.common import InputError
from pipeline.describe import DESCRIPTION_COLUMNS
from pipeline.describe.attributes import attribute_phrase, describe_from_attributes


def test_attribute_phrases_read_like_english():
    assert attribute_phrase("has_wing_color::blue") == ("wing_color", "blue wings")
    assert attribute_phrase("has_primary_color::red") == ("primary_color", "red plumage")
    assert attribute_phrase("has_head_color::grey") == ("head_color", "a grey head")
    assert attribute_phrase("has_upperparts_color::brown") == ("upperparts_color", "brown upperparts")
    assert attribute_phrase("has_bill_shape::hooked") == ("bill_shape", "a hooked-shaped bill")
    assert attribute_phrase("has_breast_pattern::striped") == ("breast_pattern", "a striped breast")
    assert attribute_phrase("has_size::small_(5_-_9_in)") == ("size", "a small (5 - 9 in) size")


def test_descriptions_use_each_class_top_attributes():
    attributes = pd.DataFrame({
        "class_id": [1, 2],
        "has_wing_color::blue": [90.0, 10.0], "has_wing_color::red": [10.0, 80.0],
        "has_bill_shape::cone": [70.0, 30.0], "has_bill_shape::long": [30.0, 20.0],
    })
    classes = pd.DataFrame({"class_id": [1, 2], "class_name": ["Blue Finch", "Red Warbler"]})
    table = describe_from_attributes(attributes, classes, samples_per_class=3, traits_per_sample=2,
                                     min_percent=50, seed=0, wrong_traits=0)
    assert list(table.columns) == DESCRIPTION_COLUMNS
    assert table.groupby("class_id").size().tolist() == [3, 3]
    first = table[table["class_id"] == 1]["text"]
    assert first.str.contains("Blue Finch").all() and first.str.contains("blue wings").all()
    assert first.str.contains("a cone-shaped bill").all()
    second = table[table["class_id"] == 2]["text"]
    assert second.str.contains("red wings").all() and not second.str.contains("bill").any()
    assert table["sample_index"].tolist() == [0, 1, 2, 0, 1, 2]
    assert (table["source"] == "attributes").all()
    again = describe_from_attributes(attributes, classes, samples_per_class=3, traits_per_sample=2,
                                     min_percent=50, seed=0, wrong_traits=0)
    pd.testing.assert_frame_equal(table, again)


def test_wrong_traits_swap_a_share_of_the_stated_traits_for_another_value_of_their_kind():
    """The weak set: the same sentences, each stated trait replaced with probability
    wrong_traits by another value of its own kind (never a kind's own top value, never another
    kind)."""
    kinds = {"wing_color": ["blue", "red", "green", "white"], "bill_shape": ["cone", "long", "hooked"],
             "tail_pattern": ["solid", "spotted", "striped"], "size": ["small", "large"]}
    columns = {f"has_{kind}::{value}": [100.0 if i == 0 else 0.0]
               for kind, values in kinds.items() for i, value in enumerate(values)}
    attributes = pd.DataFrame({"class_id": [7], **columns})
    classes = pd.DataFrame({"class_id": [7], "class_name": ["Test Bird"]})
    common = dict(samples_per_class=300, traits_per_sample=4, min_percent=50, seed=3)
    exact = describe_from_attributes(attributes, classes, **common, wrong_traits=0)
    weak = describe_from_attributes(attributes, classes, **common, wrong_traits=0.33)
    right = ["blue wings", "a cone-shaped bill", "a solid tail", "a small size"]
    wrong = ["red wings", "green wings", "white wings", "a long-shaped bill",
             "a hooked-shaped bill", "a spotted tail", "a striped tail", "a large size"]
    assert exact["text"].map(lambda t: sum(w in t for w in right)).eq(4).all()
    stated_wrong = weak["text"].map(lambda t: sum(w in t for w in wrong))
    stated_right = weak["text"].map(lambda t: sum(w in t for w in right))
    by_kind = [[w for w in right + wrong if w.split()[-1] == noun]  # wings, bill, tail, size
               for noun in ("wings", "bill", "tail", "size")]
    for text in weak["text"]:  # each kind stated once: a swap stays within its kind
        assert [sum(w in text for w in phrases) for phrases in by_kind] == [1, 1, 1, 1], text
    assert 0.29 < stated_wrong.sum() / (4 * len(weak)) < 0.37  # 1,200 traits at p = 0.33
    assert (weak["text"] == exact["text"]).mean() < 0.5
    again = describe_from_attributes(attributes, classes, **common, wrong_traits=0.33)
    pd.testing.assert_frame_equal(weak, again)
    assert describe_from_attributes(attributes, classes, **common, wrong_traits=1.0)[
        "text"].map(lambda t: sum(w in t for w in right)).eq(0).all()


def test_real_cub_attributes_describe_all_200_classes(shared_data):
    from pipeline.data.cub import read_cub_attributes, read_cub_classes
    cub = shared_data / "CUB_200_2011_metadata"
    table = describe_from_attributes(read_cub_attributes(cub), read_cub_classes(cub),
                                     samples_per_class=2, traits_per_sample=4, min_percent=30, seed=0,
                                     wrong_traits=0)
    assert table["class_id"].nunique() == 200 and len(table) == 400
    assert table["text"].str.len().min() > 40


def test_list_answers_parse_robustly():
    from pipeline.describe.prompts import parse_list

    answer = """There are several useful visual features to tell there is a wren in a photo:

1. small, round body
2) short, cocked tail.

- brown and barred plumage
  with white spots;
* **Bill**: thin and slightly curved
\u2022 small, round body

These features together help identify the bird.
- not part of the list any more
Q: What are useful features for distinguishing a lemur in a photo?"""
    assert parse_list(answer) == ["small, round body", "short, cocked tail",
                                  "brown and barred plumage with white spots",
                                  "Bill: thin and slightly curved"]
    # CBD's prompt ends in "-": the first answer line continues that bullet
    assert parse_list(" tiny songbird\n- white eyebrow\nQ: next", first_line_is_item=True) == [
        "tiny songbird", "white eyebrow"]
    assert parse_list("A: There are several useful visual features to tell there is a wren:\n"
                      "- tiny\n- **long tail**", first_line_is_item=True) == ["tiny", "long tail"]
    assert parse_list("Here are some features of a wren:\n- tiny", first_line_is_item=True) == [
        "tiny"]
    assert parse_list("I cannot help with that.") == []
    assert parse_list("") == []


def test_prose_answers_split_into_sentences():
    from pipeline.describe.prompts import parse_sentences

    answer = ("Sure! The Cactus Wren is a large wren, about 3.5 inches tall.\n\n"
              "1. It has a long, slightly curved bill. 2. Its breast is densely spotted")
    assert parse_sentences(answer) == [
        "The Cactus Wren is a large wren, about 3.5 inches tall.",
        "It has a long, slightly curved bill.", "Its breast is densely spotted."]
    assert parse_sentences("- Size: small and round\n- Bill: thin, curved") == [
        "Size: small and round.", "Bill: thin, curved."]
    assert parse_sentences("   \n ") == []


def test_descriptors_become_cbd_sentences():
    from pipeline.describe.prompts import descriptor_sentence

    assert descriptor_sentence("Cactus Wren", "a long, curved bill") == \
        "Cactus Wren, which is a long, curved bill"
    assert descriptor_sentence("Cactus Wren", "spotted breast") == \
        "Cactus Wren, which has spotted breast"
    assert descriptor_sentence("Cactus Wren", "often found in deserts") == \
        "Cactus Wren, which often found in deserts"
    # CBD's code tests characters, not words; kept as is so CBD's numbers reproduce
    assert descriptor_sentence("Cactus Wren", "always in pairs") == \
        "Cactus Wren, which is always in pairs"


def test_real_cbd_file_imports_all_200_cub_classes(shared_data):
    from pipeline.data.cub import read_cub_classes
    from pipeline.describe.imported import describe_from_cbd

    classes = read_cub_classes(shared_data / "CUB_200_2011_metadata")
    table = describe_from_cbd(shared_data / "cbd" / "descriptors_cub.json", classes)
    assert list(table.columns) == DESCRIPTION_COLUMNS
    assert table["class_id"].nunique() == 200 and len(table) == 1312
    first = table[table["class_id"] == 1]["text"].tolist()
    assert first[:2] == ["Black-footed Albatross, which is a seabird",  # the file's name
                         "Black-footed Albatross, which has black and white"]
    assert (table["source"] == "cbd").all()
    assert not table.duplicated(["class_id", "sample_index", "prompt_id"]).any()


def test_unmatched_classes_are_listed(tmp_path):
    from pipeline.describe.imported import UnmatchedClasses, describe_from_file

    (tmp_path / "mine.yaml").write_text(
        "black-footed albatross: [a seabird, black feet]\n"
        "001.Laysan_Albatross: white with black wings\n")
    classes = pd.DataFrame({"class_id": [1, 2, 3], "class_name": [
        "Black footed Albatross", "Laysan Albatross", "Chuck will Widow"]})
    try:
        describe_from_file(tmp_path / "mine.yaml", classes)
    except UnmatchedClasses as error:
        assert "1 of 3 classes have no descriptions" in str(error)
        assert "3: Chuck will Widow" in str(error)
    else:
        raise AssertionError("an unmatched class was not reported")
    with pytest.raises(UnmatchedClasses) as error:  # an entry of another set: refused, named
        describe_from_file(tmp_path / "mine.yaml", classes.iloc[[0, 2]])
    assert str(error.value) == (
        f"1 of 2 classes have no descriptions in {tmp_path / 'mine.yaml'}: 3: Chuck will Widow; "
        "and 1 of its 2 entries name no class of the dataset: '001.Laysan_Albatross'")
    with pytest.raises(UnmatchedClasses) as error:
        describe_from_file(tmp_path / "mine.yaml", classes.iloc[:1])
    assert str(error.value) == (f"{tmp_path / 'mine.yaml'}: 1 of its 2 entries name no class of "
                                "the dataset: '001.Laysan_Albatross'")
    table = describe_from_file(tmp_path / "mine.yaml", classes.iloc[:2])
    assert table["text"].tolist() == ["a seabird", "black feet", "white with black wings"]
    assert table["sample_index"].tolist() == [0, 1, 0] and (table["source"] == "file").all()


@pytest.mark.parametrize("name, text, why", [
    ("mine.json", '{"Laysan Albatross": ["white"], "Laysan Albatross": ["a seabird"]}',
     "is not valid JSON: the key 'Laysan Albatross' is given twice"),
    ("mine.yaml", "Laysan Albatross: [white]\nLaysan Albatross: [a seabird]\n",
     "is not valid YAML: the key 'Laysan Albatross' is given twice"),
    ("mine.yaml", "Laysan Albatross: [" + "white " * 1000 + "]\n",
     ": the entry for 'Laysan Albatross' holds a text of 5,999 characters (at most 2,000"),
], ids=["json key twice", "yaml key twice", "a huge text"])
def test_a_descriptions_file_that_loses_or_bloats_texts_is_refused(tmp_path, name, text, why):
    """Issue 23: a class given twice silently kept only its last list; a 10 MB descriptor took
    minutes to encode. Each is one error naming the file and the class."""
    from pipeline.common import InputError
    from pipeline.describe.imported import describe_from_file

    (tmp_path / name).write_text(text)
    classes = pd.DataFrame({"class_id": [2], "class_name": ["Laysan Albatross"]})
    with pytest.raises(InputError) as error:
        describe_from_file(tmp_path / name, classes)
    assert str(error.value).startswith(f"{tmp_path / name}{' ' if why[0] != ':' else ''}{why}")
    assert "\n" not in str(error.value)


def test_cbd_rule_on_every_descriptor_of_the_real_cub_file(shared_data):
    """CBD's rule, as its code applies it, on the published file: the first word decides, by
    its first characters. Fragments the LLM left (the Slaty-backed Gull's "and feet are
    yellow", cut from "Legs and feet are yellow") go through the same rule, unchanged."""
    import json

    from pipeline.data.cub import read_cub_classes
    from pipeline.describe.imported import describe_from_cbd

    path = shared_data / "cbd" / "descriptors_cub.json"
    table = describe_from_cbd(path, read_cub_classes(shared_data / "CUB_200_2011_metadata"))
    texts = set(table["text"])
    expected = {
        ("Slaty-backed Gull", "and feet are yellow"): "Slaty-backed Gull, which is and feet are yellow",
        ("Slaty-backed Gull", "are dark grey and the underparts are white"):
            "Slaty-backed Gull, which is are dark grey and the underparts are white",
        ("Frigatebird", "has a red gular sac (throat pouch) used to attract mates"):
            "Frigatebird, which has a red gular sac (throat pouch) used to attract mates",
        ("Groove-billed Ani", "found in the southern United States and Mexico"):
            "Groove-billed Ani, which has found in the southern United States and Mexico",
        ("Baltimore Oriole", "an orange breast and belly"):
            "Baltimore Oriole, which is an orange breast and belly",
        ("Black-footed Albatross", "long, narrow wings"):
            "Black-footed Albatross, which has long, narrow wings",
    }
    descriptors = json.loads(path.read_text())
    for (name, descriptor), sentence in expected.items():
        assert descriptor in descriptors[name]  # the file really holds it
        assert sentence in texts
    # every text is "<the file's class name>, which ..." and keeps its descriptor verbatim
    rendered = {(name, d) for name, ds in descriptors.items() for d in ds}
    assert len(table) == len(rendered) - sum(len(ds) - len(set(ds)) for ds in descriptors.values())
    clauses = ("which is ", "which has ", "which ")
    for name, descriptor in rendered:
        assert any(f"{name}, {clause}{descriptor}" in texts for clause in clauses), descriptor


def real_descriptors():
    classes = pd.DataFrame({"class_id": [1, 2, 3],
                            "class_name": ["Black footed Albatross", "Cardinal", "Blue Jay"]})
    texts = {1: ["Black footed Albatross, which is a seabird",
                 "Black footed Albatross, which has long, narrow wings",
                 "Black footed Albatross, which is a seabird"],  # repeated: counts once
             2: ["Cardinal, which has a red crest", "Cardinal, which has a black mask"],
             3: ["Blue Jay, which has blue plumage"]}
    rows = [(c, classes.set_index("class_id").loc[c, "class_name"], t, "cbd", "cbd-import", i)
            for c, ts in texts.items() for i, t in enumerate(ts)]
    return pd.DataFrame(rows, columns=DESCRIPTION_COLUMNS), classes


def test_waffle_controls_follow_the_references_rules():
    """WaffleCLIP's builder ("A photo of a [concept: a ]<class>, which ..."), its string shapes
    measured on the class names, the real count per class, and every draw different."""
    from pipeline.describe.controls import Shapes, control_table, waffle_words

    real, classes = real_descriptors()
    shapes = Shapes(classes["class_name"].tolist(), real["text"].tolist())
    assert shapes.words_per_name == 2  # round(mean(3, 1, 2))
    # longest words 9, 8, 4: ceil(mean) 7, rounded up to a multiple of round(mean spaces) + 1
    assert (shapes.groups, shapes.group_length) == (2, 4)
    assert set(shapes.characters) <= set("".join(real["text"])) - {" ", ",", "."}
    # cut to round(mean of the names' mean word lengths 6.67, 8, 3.5) = 6
    assert max(map(len, shapes.words)) == 6 and len(waffle_words()) == 4329

    words = control_table(real, classes, "words", 3, None, None, seed=0)
    assert words.groupby(["prompt_id", "class_id"]).size().unstack().values.tolist() == [
        [2, 2, 1]] * 3  # the real set's distinct texts per class, in every draw
    first = words[words["prompt_id"] == "words-draw0"]["text"].iloc[2]
    assert first.startswith("A photo of a Cardinal, which ") and first.endswith(".")
    draws = [set(words.loc[words["prompt_id"] == p, "text"]) for p in words["prompt_id"].unique()]
    assert draws[0] != draws[1] and words.equals(control_table(real, classes, "words", 3, None,
                                                               None, seed=0))

    chars = control_table(real, classes, "characters", 1, "bird", None, seed=0)
    clause = chars["text"].iloc[0].removeprefix("A photo of a bird: a Black footed Albatross, ")
    groups = clause.removeprefix("which has ").removeprefix("which is ").rstrip(".").split(", ")
    assert [len(g) for g in groups] == [4, 4]

    waffle = control_table(real, classes, "waffle", 2, None, 4, seed=0)
    per_class = waffle[waffle["prompt_id"] == "waffle-draw0"].groupby("class_id")["text"].apply(
        lambda t: [x.split(", ", 1)[1] for x in t])
    assert len(per_class[1]) == 8  # 4 pairs: word sequences and character strings alternate
    assert per_class[1] == per_class[2] == per_class[3]  # one list shared by every class


def test_the_shuffled_control_gives_every_class_another_class_texts_under_its_own_name():
    from pipeline.describe.controls import control_table

    real, classes = real_descriptors()
    shuffled = control_table(real, classes, "shuffled", 5, None, None, seed=1)
    own = {c: set(real.loc[real["class_id"] == c, "text"]) for c in (1, 2, 3)}
    names = dict(zip(classes["class_id"], classes["class_name"]))
    for (draw, c), texts in shuffled.groupby(["prompt_id", "class_id"])["text"]:
        assert not set(texts) & own[c], (draw, c)  # never its own texts
        assert all(names[c] in t for t in texts)  # the donor's name replaced by its own
        donors = [d for d in own if d != c and {t.replace(names[c], names[d]) for t in texts}
                  == own[d]]
        assert len(donors) == 1, (draw, c)


def test_a_control_needs_a_text_for_every_class_and_names_its_key(tmp_path):
    from pipeline.describe import describe_set
    from pipeline.describe.settings import Describe

    real, classes = real_descriptors()
    settings = Describe(controls={"noise": {"kind": "words", "of": "descriptors"}})
    with pytest.raises(InputError, match=r"describe.controls.noise: the real description set "
                       r"has no text for classes \[3\]"):
        describe_set("noise", settings, classes, None, prompts=Path("."), cache=None,
                     dry_run=False, say=print, real=real[real["class_id"] != 3])
    made = describe_set("noise", settings, classes, None, prompts=Path("."), cache=None,
                        dry_run=False, say=print, real=real)
    assert set(made["source"]) == {"control"} and made["prompt_id"].nunique() == 7
    assert settings.provenance("noise") == {
        "kind": "words", "of": "descriptors", "draws": 7, "backend": "control",
        "source": "control of descriptors", "prompt": "random words, 7 draw(s)"}


def test_the_shuffled_control_renames_a_cbd_file_as_it_writes_the_names():
    """CBD's file writes "Black-footed Albatross" for CUB's "Black footed Albatross": the
    control must still put the receiving class's name in, and never inside another word."""
    from pipeline.describe.controls import control_table, name_pattern
    from pipeline.describe.imported import describe_from_cbd

    classes = pd.DataFrame({"class_id": [1, 2, 3], "class_name": [
        "Black footed Albatross", "Brewers Blackbird", "rose"]})
    import json
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "descriptors.json"
        path.write_text(json.dumps({"Black-footed Albatross": ["a seabird"],
                                    "Brewer's Blackbird": ["glossy black plumage"],
                                    "Rose": ["a rosette of petals"]}))
        real = describe_from_cbd(path, classes)
    assert real["text"].tolist()[0] == "Black-footed Albatross, which is a seabird"
    shuffled = control_table(real, classes, "shuffled", 3, None, None, seed=0)
    names = dict(zip(classes["class_id"], classes["class_name"]))
    for class_id, text in zip(shuffled["class_id"], shuffled["text"]):
        assert text.startswith(f"{names[class_id]}, which "), text
        others = [n for c, n in names.items() if c != class_id and n != "rose"]
        assert not any(name_pattern(n).search(text) for n in others), text
    assert any("rosette" in t for t in shuffled["text"])  # "rose" replaced, not inside words
