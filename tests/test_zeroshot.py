from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.common import InputError
from pipeline.evaluate import held_out_mask
from pipeline.features import class_prompts, load_template_set, template_set_names
from pipeline.zeroshot import (cosine_matrix, descriptor_class_scores, descriptor_phrase,
                               ensemble_classifier, explain, explanation_picture, fit_linear_probe)

TEMPLATES = Path(__file__).resolve().parents[1] / "prompts" / "templates"


# --- templates ---------------------------------------------------------------------------------

def test_repo_template_sets_and_prompts():
    assert load_template_set("paper", TEMPLATES) == ["a photo of a {}, a type of bird."]
    assert load_template_set("classname", TEMPLATES) == ["{}"]
    prompts = class_prompts(["a {}.", "a photo of a {}."], ["Sooty Albatross", "Cardinal"])
    assert list(prompts.columns) == ["class_index", "template_index", "text"]
    assert prompts["class_index"].tolist() == [0, 0, 1, 1]
    assert prompts["template_index"].tolist() == [0, 1, 0, 1]
    assert prompts["text"].tolist() == ["a Sooty Albatross.", "a photo of a Sooty Albatross.",
                                        "a Cardinal.", "a photo of a Cardinal."]


def test_open_clip_template_sets_are_read_from_open_clip():
    from open_clip import zero_shot_metadata

    templates = load_template_set("open_clip:OPENAI_IMAGENET_TEMPLATES", TEMPLATES)
    assert len(templates) == 80
    assert all(t.count("{}") == 1 for t in templates)
    assert templates[0].replace("{}", "Cardinal") == \
        zero_shot_metadata.OPENAI_IMAGENET_TEMPLATES[0]("Cardinal")
    assert len(load_template_set("open_clip:SIMPLE_IMAGENET_TEMPLATES", TEMPLATES)) == 7
    names = template_set_names(TEMPLATES)
    assert names[:7] == ["aircraft", "car", "classname", "flower", "food", "paper",
                         "pet"]  # the files, sorted, then open_clip's
    assert "open_clip:OPENAI_IMAGENET_TEMPLATES" in names


def test_bad_template_sets_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="available: .*paper.*open_clip:OPENAI_IMAGENET"):
        load_template_set("no_such_set", TEMPLATES)
    with pytest.raises(InputError, match="open_clip has"):
        load_template_set("open_clip:NO_SUCH_TEMPLATES", TEMPLATES)
    (tmp_path / "two.yaml").write_text("templates: ['a {} or a {}']\n")
    with pytest.raises(InputError, match=r"two\.yaml.*exactly one"):
        load_template_set("two", tmp_path)
    (tmp_path / "flat.yaml").write_text("templates: 'a {}'\n")
    with pytest.raises(InputError, match=r"flat\.yaml.*list of texts"):
        load_template_set("flat", tmp_path)


# --- scoring -----------------------------------------------------------------------------------

def test_ensemble_equals_a_hand_computation():
    texts = np.array([[3.0, 4.0, 0.0], [0.0, 2.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, -5.0]])
    class_index = np.array([0, 0, 1, 1])
    unit = texts / np.linalg.norm(texts, axis=1, keepdims=True)
    expected = np.stack([unit[:2].mean(0), unit[2:].mean(0)])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.allclose(ensemble_classifier(texts, class_index, 2).numpy(), expected, atol=1e-6)
    with pytest.raises(InputError, match="1 of 3 classes have no prompt"):
        ensemble_classifier(texts, class_index, 3)


def test_cosine_and_descriptor_scores_equal_a_loop_over_classes():
    rng = np.random.default_rng(0)
    images, texts = rng.normal(size=(5, 8)), rng.normal(size=(7, 8))
    similarities = cosine_matrix(images, texts)
    assert similarities.dtype == torch.float32 and similarities.shape == (5, 7)
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    assert np.allclose(similarities.numpy(), unit(images) @ unit(texts).T, atol=1e-6)
    descriptor_class = np.array([2, 0, 0, 1, 2, 2, 0])
    scores = descriptor_class_scores(similarities, descriptor_class, 3)
    for c in range(3):
        assert np.allclose(scores[:, c].numpy(),
                           similarities.numpy()[:, descriptor_class == c].mean(axis=1), atol=1e-6)
    with pytest.raises(InputError, match="have no descriptor"):
        descriptor_class_scores(similarities, descriptor_class, 4)


# --- explanations ------------------------------------------------------------------------------

def explained(top_k=2):
    """A small CBD decision: 6 images, 3 classes with 3, 2 and 4 descriptors."""
    rng = np.random.default_rng(1)
    descriptor_class = np.array([0, 1, 2, 0, 2, 1, 2, 0, 2])
    texts = [f"Class {c}, which has trait {m}" for m, c in enumerate(descriptor_class)]
    similarities = torch.as_tensor(rng.uniform(0.1, 0.4, size=(6, 9)), dtype=torch.float32)
    scores = descriptor_class_scores(similarities, descriptor_class, 3)
    labels = np.array([0, 1, 2, 0, 1, 2])
    rows = explain(similarities, descriptor_class, texts, scores, labels,
                   [f"img{i}" for i in range(6)], ["Class 0", "Class 1", "Class 2"], top_k)
    return rows, similarities, descriptor_class, scores, labels


def test_explanations_agree_with_the_scores_they_explain():
    rows, similarities, descriptor_class, scores, labels = explained(top_k=3)
    predicted = scores.argmax(dim=1).numpy()
    assert (predicted != labels).any() and (predicted == labels).any()  # both cases covered
    for n in range(6):
        mine = rows[rows["image_id"] == f"img{n}"]
        assert set(mine["role"]) == ({"predicted"} if predicted[n] == labels[n]
                                     else {"predicted", "true"})
        assert (mine["correct"] == (predicted[n] == labels[n])).all()
        for role, c in (("predicted", predicted[n]), ("true", labels[n])):
            block = mine[mine["role"] == role]
            if block.empty:
                continue
            own = similarities[n, torch.as_tensor(descriptor_class == c)]
            assert (block["class_index"] == c).all()
            assert np.allclose(block["class_score"], own.mean().item(), atol=1e-6)
            assert np.isclose(block["class_score"].iloc[0], scores[n, c].item())
            assert block["rank"].tolist() == list(range(1, min(3, len(own)) + 1))
            assert block["similarity"].iloc[0] == pytest.approx(own.max().item())
            assert block["similarity"].is_monotonic_decreasing
            assert all(text.startswith(f"Class {c}, ") for text in block["descriptor"])


def test_explanations_keep_at_most_top_k_and_the_full_text():
    rows = explained(top_k=1)[0]
    assert (rows["rank"] == 1).all()
    assert rows.groupby(["image_id", "role"]).size().eq(1).all()
    assert rows["descriptor"].str.contains("Class .*, which has").all()


def test_descriptor_phrase_strips_the_class_name():
    assert descriptor_phrase("Black-footed Albatross, which is a seabird",
                             "Black-footed Albatross") == "which is a seabird"
    assert descriptor_phrase("Black-footed Albatross, which is a seabird",
                             "Black footed Albatross") == "which is a seabird"
    assert descriptor_phrase("a large seabird, with long wings", "Black-footed Albatross") == \
        "a large seabird, with long wings"


# --- linear probe ------------------------------------------------------------------------------

def blobs(n_per_class, seed):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(10, 16))
    labels = np.repeat(np.arange(10), n_per_class)
    return centres[labels] + 0.4 * rng.normal(size=(len(labels), 16)), labels


def test_linear_probe_learns_blobs_and_is_deterministic():
    features, labels = blobs(30, seed=0)
    strengths = [1e-1, 1e-3, 1e-5]
    fit = dict(strengths=strengths, seed=3, max_iter=100, device="cpu")
    probe = fit_linear_probe(features, labels, 10, val_fraction=0.2, **fit)
    assert probe.weight.shape == (10, 16) and probe.bias.shape == (10,)
    assert probe.strength in strengths
    assert sorted(probe.validation["strength"]) == sorted(strengths)
    test_features, test_labels = blobs(20, seed=1)
    accuracy = (probe.logits(test_features).argmax(dim=1).numpy() == test_labels).mean()
    assert accuracy > 0.9
    again = fit_linear_probe(features, labels, 10, val_fraction=0.2, **fit)
    assert torch.equal(again.weight, probe.weight) and torch.equal(again.bias, probe.bias)
    with pytest.raises(InputError, match="val_fraction"):
        fit_linear_probe(features, labels, 10, val_fraction=1.0, **fit)


def test_held_out_slice_is_stratified_and_seeded():
    labels = np.array([0] * 10 + [1] * 3 + [2])
    mask = held_out_mask(labels, 0.25, seed=0)
    assert [int(mask[labels == c].sum()) for c in range(3)] == [3, 1, 0]  # 2.5 rounds up
    assert np.array_equal(mask, held_out_mask(labels, 0.25, seed=0))
    assert not np.array_equal(mask, held_out_mask(labels, 0.25, seed=1))


# --- pictures ----------------------------------------------------------------------------------

@pytest.mark.parametrize("wrong", [False, True])
def test_explanation_picture_writes_a_png(tmp_path, wrong):
    rows = explained(top_k=3)[0]
    image_ids = rows.loc[rows["correct"] != wrong, "image_id"]
    one = rows[rows["image_id"] == image_ids.iloc[0]]
    assert (one["role"] == "true").any() == wrong
    image = tmp_path / "bird.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(
        image)
    png = explanation_picture(image, one, title="img: Class 0")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InputError, match="exactly one image"):
        explanation_picture(image, rows, title="all")


def test_explanation_bars_start_at_0_and_show_each_descriptor_whole(tmp_path):
    """Issue 25: cosines of 0.616 / 0.614 / 0.613 drawn on an axis zoomed to their band looked
    very different, and descriptors were cut at two lines, hiding the trait that separates
    sibling species (here its last words)."""
    import pandas as pd

    from pipeline.zeroshot.pictures import explanation_figure

    long = ("Least Flycatcher, which has a small olive-grey body with a white eye-ring, two "
            "pale wing bars, a short broad bill with an orange lower mandible, and a short "
            "primary projection that separates it from the Acadian Flycatcher")
    rows = pd.DataFrame({
        "image_id": 7, "role": ["predicted"] * 3 + ["true"] * 2, "correct": False,
        "rank": [1, 2, 3, 1, 2], "class_score": [0.614, 0.614, 0.614, 0.601, 0.601],
        "class_name": ["Least Flycatcher"] * 3 + ["Acadian Flycatcher"] * 2,
        "descriptor": [long, "Least Flycatcher, which has a white eye-ring",
                       "Least Flycatcher, which has two wing bars",
                       "Acadian Flycatcher, which has a long primary projection",
                       "Acadian Flycatcher, which has a greenish back"],
        "similarity": [0.616, 0.614, 0.613, 0.605, 0.597]})
    image = tmp_path / "bird.png"
    Image.new("RGB", (64, 48), (120, 140, 90)).save(image)
    fig = explanation_figure(image, rows, title="image 7")
    bars = fig.axes[1:]
    assert [ax.get_xlim()[0] for ax in bars] == [0.0, 0.0]
    assert bars[0].get_xlim() == bars[1].get_xlim()  # one axis for both blocks
    labels = [t.get_text() for t in bars[0].get_yticklabels()]
    assert labels[0].replace("\n", " ") == long.removeprefix("Least Flycatcher, ")
    assert labels[0].count("\n") >= 2 and "..." not in labels[0]  # whole, over 3+ lines
    assert all(len(line) <= 60 for line in labels[0].splitlines())
    fig.canvas.draw()  # every label inside the picture, the longest included
    renderer, box = fig.canvas.get_renderer(), fig.bbox
    for text in bars[0].get_yticklabels():
        extent = text.get_window_extent(renderer)
        assert extent.y0 >= box.y0 - 0.5 and extent.y1 <= box.y1 + 0.5 and extent.x0 >= 0


def test_a_template_file_with_an_unknown_key_is_refused(tmp_path):
    (tmp_path / "mine.yaml").write_text("templates: ['a {}']\ntemplate: ['a photo of {}']\n")
    with pytest.raises(InputError, match="unknown key"):
        load_template_set("mine", tmp_path)


def hand_made_inputs(descriptions):
    from pipeline.zeroshot.baselines import ZeroShotInputs

    test_x = np.eye(3, dtype=np.float32)[[0, 1, 2, 2]]  # images at the three axes
    return ZeroShotInputs(
        backbone="b", class_names=["a", "b", "c"], train_x=test_x, train_y=np.arange(4) % 3,
        test_x=test_x, test_y=torch.tensor([0, 1, 2, 2]), test_ids=np.arange(4),
        test_paths=[Path(f"{i}.jpg") for i in range(4)], templates={},
        descriptions=descriptions, device="cpu")


def test_cupl_scores_the_mean_embedding_where_cbd_scores_the_mean_cosine():
    """One set, two rules: class 0's texts are one on its axis and one far off it, class 1's two
    near the middle of axes 0 and 1. CBD's mean cosine gives image 0 to class 1 (0.5 + 0.0 vs
    0.6 + 0.6); CuPL's mean embedding, renormalised, gives it to class 0."""
    from pipeline.zeroshot.baselines import BASELINES, TextFeatures

    features = np.array([[1, 0, 0], [0, 0, 1], [0.6, 0.8, 0], [0.6, 0.8, 0], [0, 0, 1]],
                        dtype=np.float32)
    texts = TextFeatures(features, np.array([0, 0, 1, 1, 2]), list("vwxyz"), "file", "mine")
    inputs = hand_made_inputs({"mine": texts})
    (cbd,) = [s for s in BASELINES.get("cbd")(inputs, BASELINES.entry("cbd").settings(pictures=0))]
    (cupl,) = BASELINES.get("cupl")(inputs, BASELINES.entry("cupl").settings())
    assert torch.allclose(cbd.scores[0], torch.tensor([0.5, 0.6, 0.0]))
    assert torch.allclose(cupl.scores[0], torch.tensor([2 ** -0.5, 0.6, 0.0]), atol=1e-6)
    assert int(cbd.scores[0].argmax()) == 1 and int(cupl.scores[0].argmax()) == 0


def test_a_control_set_is_scored_draw_by_draw_and_reported_as_mean_and_spread():
    from pipeline.zeroshot.baselines import BASELINES, TextFeatures
    from pipeline.zeroshot.run import _over_draws

    right = np.eye(3, dtype=np.float32)
    wrong = right[[1, 2, 0]]  # every class's text on the next axis
    features = np.concatenate([right, wrong, right])
    texts = TextFeatures(features, np.tile([0, 1, 2], 3), [f"t{i}" for i in range(9)],
                         "control of x", "random words, 3 draw(s)", np.repeat([0, 1, 2], 3))
    inputs = hand_made_inputs({"noise": texts})
    (scored,) = BASELINES.get("cbd")(inputs, BASELINES.entry("cbd").settings(pictures=0))
    assert len(scored.draws) == 3 and scored.texts == 3  # one draw's texts
    assert torch.equal(scored.scores, scored.draws[0])
    result = _over_draws(scored, inputs.test_y)
    assert result["draws"] == 3
    assert result["top1"] == pytest.approx(200 / 3)  # 100, 0, 100
    assert result["top1_std"] == pytest.approx(np.std([100, 0, 100], ddof=1))
    assert BASELINES.get("cupl")(inputs, BASELINES.entry("cupl").settings()) == []  # not a real set
