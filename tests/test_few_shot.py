"""The few-shot protocol and its methods (pipeline/adapter/budgets.py, few_shot.py, logistic.py,
methods/probe, ensemble, text_prior, tip, tip_f, clap, lp_pp): budgets, folds, the solver, each method's
published rule on hand-made features, and the proof that no test label reaches a choice."""

import functools
import json
import types

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from conftest import BACKBONE, run_by_hand, write_qformer
from pipeline.adapter.budgets import Budget, budget_list, folds, kept_images
from pipeline.adapter.few_shot import BudgetImages, out_of_fold_logits
from pipeline.adapter.logistic import fit_logistic_heads
from pipeline.adapter.selection import keep_mask

LABELS = np.repeat([0, 1, 2], [5, 20, 20])  # class 0 smaller than the largest budget


def test_shot_budgets_keep_k_per_class_and_grow_by_adding_images():
    four, eight = (kept_images(LABELS, Budget(1, shots=k)) for k in (4, 8))
    assert np.bincount(LABELS[four]).tolist() == [4, 4, 4]
    assert np.bincount(LABELS[eight]).tolist() == [5, 8, 8]  # a small class keeps all it has
    assert set(four) <= set(eight)  # the same seed's smaller budget is a subset
    assert not np.array_equal(four, kept_images(LABELS, Budget(2, shots=4)))


def test_ratio_budgets_are_the_papers_class_balanced_selection():
    kept = kept_images(LABELS, Budget(3, ratio=30))
    assert np.array_equal(kept, np.flatnonzero(keep_mask(LABELS, 0.3, "class_balanced", 3)))
    assert np.bincount(LABELS[kept]).tolist() == [2, 6, 6]  # round half up of 30 % per class


def test_budget_list_names_every_cell():
    budgets = budget_list([10, 100], [0], [4, 1], [1, 2])
    assert [b.name for b in budgets] == ["img100-s0", "img010-s0", "shots01-s1", "shots01-s2",
                                         "shots04-s1", "shots04-s2"]
    assert [b.label for b in budgets[1:3]] == ["10%", "1-shot"]
    with pytest.raises(ValueError, match="either shots or a ratio"):
        Budget(0, shots=1, ratio=10)


def test_folds_are_stratified_and_absent_where_a_class_has_one_image():
    labels = np.repeat([0, 1, 2], [3, 6, 9])
    fold = folds(labels, 5, seed=0)  # the smallest class has 3: 3 folds
    assert sorted(set(fold)) == [0, 1, 2]
    for c in range(3):
        assert np.bincount(fold[labels == c]).tolist() == [np.sum(labels == c) // 3] * 3
    assert folds(np.array([0, 1, 1, 2, 2]), 3, seed=0) is None


def objective(x, y, weights, strength, prior, weight, bias):
    """The rule of pipeline.adapter.logistic for one head, written plainly."""
    loss = F.cross_entropy(x @ weight.T + bias, y, reduction="none")
    return (weights * loss).sum() / weights.sum() + strength * (weight - prior).square().sum()


@pytest.fixture
def blobs():
    torch.manual_seed(0)
    y = torch.arange(30) % 3
    x = F.normalize(torch.randn(3, 6)[y] + 0.8 * torch.randn(30, 6), dim=-1).double()
    return x, y


def test_batched_heads_reach_each_heads_own_optimum(blobs):
    x, y = blobs
    weights = torch.ones(3, 30, dtype=torch.float64)
    weights[0, :10], weights[2, 5:] = 0, 0.5  # head 0 drops rows, head 2 down-weights some
    strengths = torch.tensor([1e-1, 1e-3, 1e-2], dtype=torch.float64)
    prior = torch.zeros(3, 3, 6, dtype=torch.float64)
    prior[1] = 5 * F.normalize(torch.randn(3, 6), dim=-1)
    weight, bias = fit_logistic_heads(x, y, weights, 3, strengths, prior, tolerance=1e-9)
    for h in range(3):
        alone_w, alone_b = fit_logistic_heads(x, y, weights[h:h + 1], 3, strengths[h:h + 1],
                                              prior[h:h + 1], tolerance=1e-9)
        assert torch.allclose(weight[h], alone_w[0], atol=1e-3)  # weights of size ~5
        assert torch.allclose(bias[h], alone_b[0], atol=1e-3)
        w, b = weight[h].clone().requires_grad_(), bias[h].clone().requires_grad_()
        objective(x, y, weights[h], strengths[h], prior[h], w, b).backward()
        assert w.grad.abs().max() < 1e-5 and b.grad.abs().max() < 1e-5  # a stationary point
    # Rows weighted 0 are rows left out.
    dropped_w, _ = fit_logistic_heads(x[10:], y[10:], torch.ones(1, 20, dtype=torch.float64), 3,
                                      strengths[:1], tolerance=1e-9)
    assert torch.allclose(weight[0], dropped_w[0], atol=1e-3)


def test_heads_that_hold_rows_out_fit_on_their_own_rows_alone(blobs):
    """Fold heads (each weighing some rows 0, of unequal counts) are fitted on their own rows
    gathered, padded with a 0-weighted row: the same objective as every head over every row,
    so the same optimum; the layout keeps each head's rows in order."""
    from pipeline.adapter.logistic import own_rows

    x, y = blobs
    fold = torch.arange(30) % 4 % 3  # folds of 15 (rows 0, 3, 4, 7, ...), 8 and 7 rows
    weights = (fold[None, :] != torch.arange(3)[:, None]).double()
    rows = own_rows(weights)
    assert rows.shape == (3, 23)  # the largest head's 23 rows; the others padded
    for h in range(3):
        mine = (fold != h).nonzero().squeeze(1)
        assert torch.equal(rows[h, :len(mine)], mine)
        assert (weights[h, rows[h, len(mine):]] == 0).all()  # padding weighs 0
    assert own_rows(torch.ones(2, 30)) is None and own_rows(weights[:1].clone().fill_(1)) is None
    strengths = torch.tensor([1e-1, 1e-3, 1e-2], dtype=torch.float64)
    weight, bias = fit_logistic_heads(x, y, weights, 3, strengths, tolerance=1e-9)
    for h in range(3):
        w, b = weight[h].clone().requires_grad_(), bias[h].clone().requires_grad_()
        objective(x, y, weights[h], strengths[h], torch.zeros(3, 6, dtype=torch.float64), w,
                  b).backward()
        assert w.grad.abs().max() < 1e-5 and b.grad.abs().max() < 1e-5  # its own optimum
        alone, _ = fit_logistic_heads(x[fold != h], y[fold != h],
                                      torch.ones(1, int((fold != h).sum()), dtype=torch.float64),
                                      3, strengths[h:h + 1], tolerance=1e-9)
        assert torch.allclose(weight[h], alone[0], atol=1e-4)


def test_a_strong_pull_keeps_the_prior_and_a_warm_start_changes_nothing(blobs):
    x, y = blobs
    prior = 7 * F.normalize(torch.randn(1, 3, 6, dtype=torch.float64), dim=-1)
    ones = torch.ones(1, 30, dtype=torch.float64)
    weight, _ = fit_logistic_heads(x, y, ones, 3, torch.tensor([1e4]), prior)
    assert torch.allclose(weight, prior, atol=1e-3)
    cold = fit_logistic_heads(x, y, ones, 3, torch.tensor([1e-3]), tolerance=1e-9)
    warm = fit_logistic_heads(x, y, ones, 3, torch.tensor([1e-3]), start=(weight, torch.ones(1, 3)),
                              tolerance=1e-9)
    assert torch.allclose(cold[0], warm[0], atol=1e-3)
    centred = [b - b.mean(dim=-1, keepdim=True) for b in (cold[1], warm[1])]  # softmax ignores
    assert torch.allclose(*centred, atol=1e-3)  # a shift of all biases (they are unpenalised)


def test_each_held_out_image_is_scored_by_the_heads_that_never_saw_it(blobs, monkeypatch):
    import pipeline.adapter.logistic as logistic

    x, y = blobs
    # both routes solved tightly, so they meet at the one optimum
    monkeypatch.setattr(logistic, "fit_logistic_heads",
                        functools.partial(fit_logistic_heads, tolerance=1e-9))
    inputs = types.SimpleNamespace(features=x.float() * 3, class_ids=np.arange(3))  # unnormalised
    fold = folds(y.numpy(), 3, seed=0)
    part = BudgetImages(Budget(0, ratio=100), np.arange(30), y.numpy(), fold)
    strengths = torch.tensor([1e-2, 1e-4])
    logits = out_of_fold_logits(inputs, part, strengths, None, max_iter=1000)
    assert logits.shape == (2, 30, 3)
    unit = F.normalize(inputs.features, dim=-1)
    for k in range(2):
        for f in range(3):
            train = torch.as_tensor(fold != f, dtype=torch.float32)[None]
            w, b = fit_logistic_heads(unit, y, train, 3, strengths[k:k + 1], tolerance=1e-9)
            held = torch.as_tensor(fold == f)
            expected = unit[held] @ w[0].T + b[0]
            centre = lambda z: z - z.mean(dim=-1, keepdim=True)  # noqa: E731  (bias shift)
            assert torch.allclose(centre(logits[k, held]), centre(expected), atol=5e-2)  # float32
    assert out_of_fold_logits(inputs, BudgetImages(part.budget, part.rows, part.labels, None),
                              strengths, None, 10) is None


def test_tip_adapter_scores_by_its_published_formula():
    from pipeline.adapter.methods.tip import TipCaches

    zero_shot = F.normalize(torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]), dim=-1)
    keys = F.normalize(torch.tensor([[1.0, 1, 0], [0, 1, 1], [1, 0, 1], [0, 1, 1], [1, 0, 1]]),
                       dim=-1)
    runs = pd.DataFrame({"run": ["a", "b"], "alpha": [0.0, 2.0], "beta": [1.0, 5.5]})
    # run a's cache: the first three keys; run b's: the last two, both of class 1
    caches = TipCaches(zero_shot, keys, torch.tensor([0, 1, 0, 1, 1]), [0, 3, 5], runs, [7, 9],
                       None)
    image = torch.tensor([[0.6, 0.8, 0.0]])
    logits = caches.logits(image)
    assert torch.allclose(logits[0], 100 * image @ zero_shot.T)  # alpha 0: zero-shot CLIP
    # Tip-Adapter eq. 6 by hand: 100 x.T + alpha * exp(-beta (1 - x.k)) . one_hot(label)
    affinity = [float(image[0] @ keys[3]), float(image[0] @ keys[4])]
    cache = 2.0 * sum(float(np.exp(-5.5 * (1 - a))) for a in affinity)
    expected = 100 * image @ zero_shot.T + torch.tensor([[0.0, cache]])
    assert torch.allclose(logits[1], expected, atol=1e-4)


def test_tip_adapter_scores_held_out_images_by_the_other_folds_cache_at_full_weight():
    from pipeline.adapter.methods.tip import held_out_logits

    torch.manual_seed(0)
    x = F.normalize(torch.randn(7, 4), dim=-1)
    y = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    fold = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    zero_shot = F.normalize(torch.randn(2, 4), dim=-1)
    logits = held_out_logits(x, y, fold, zero_shot, alpha=2.0, beta=3.0)
    for i in range(7):  # by hand: never its own fold; class c's sum x n_c / its keys seen
        expected = 100 * x[i] @ zero_shot.T
        for c in range(2):
            seen = [j for j in range(7) if fold[j] != fold[i] and y[j] == c]
            cache = sum(float(torch.exp(-3.0 * (1 - x[i] @ x[j]))) for j in seen)
            expected[c] += 2.0 * cache * int((y == c).sum()) / len(seen)
        assert torch.allclose(logits[i], expected, atol=1e-4), i


def test_clap_multipliers_are_the_mean_zero_shot_probability_of_the_true_class():
    from pipeline.adapter.methods.clap import clap_multipliers, fit_prototypes

    logits = torch.log(torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8], [0.4, 0.6]]))
    labels = torch.tensor([0, 0, 1, 0])
    assert torch.allclose(clap_multipliers(logits, labels, 2),
                          torch.tensor([(0.9 + 0.5 + 0.4) / 3, 0.8]))
    # A heavy penalty pins the prototypes at the zero-shot ones; none lets them move.
    x = F.normalize(torch.tensor([[1.0, 0.2], [0.9, -0.3], [-0.2, 1.0]]), dim=-1)
    zero_shot = F.normalize(torch.tensor([[0.3, 1.0], [1.0, 0.1]]), dim=-1)  # misleading
    y = torch.tensor([0, 0, 1])
    pinned = fit_prototypes(x, y, zero_shot, torch.tensor([1e6, 1e6]), max_iter=100)
    assert torch.allclose(pinned, zero_shot, atol=1e-3)
    free = fit_prototypes(x, y, zero_shot, None, max_iter=100)
    scores = lambda w: F.cross_entropy(100 * x @ F.normalize(w, dim=-1).T, y)  # noqa: E731
    assert scores(free) < scores(zero_shot) - 0.1


def permute_test_labels(features):
    """Shuffle the class of every test image in the fixture's target_images set, in place."""
    import shutil

    from conftest import FINGERPRINT
    from pipeline.features import write_feature_set
    from pipeline.features.store import read_feature_set

    folder = features / "extract" / BACKBONE / "target_images"
    images = read_feature_set(folder, None)
    ids = images.ids.copy()
    test = (ids["split"] == "test").to_numpy()
    ids.loc[test, "class_id"] = np.random.default_rng(1).permutation(ids.loc[test, "class_id"])
    assert (ids["class_id"] != images.ids["class_id"]).sum() > 10
    shutil.rmtree(folder)
    write_feature_set(folder, ids, images.embeddings, name="target_images",
                      fingerprint=FINGERPRINT, shard_rows=64, precision="float32")


FEW_SHOT = {"probe": {}, "ensemble": {}, "text_prior": {}, "tip": {}, "tip_f": {"epochs": 3},
            "zs_lp": {}, "clap": {}, "lp_pp": {"steps": 40}}


def test_no_test_label_reaches_a_chosen_value_or_a_weight(features):
    """Train every method, permute the test split's labels, train again: every file written is
    the same bytes (hyper-parameters, weights, caches, runs tables)."""
    import yaml

    from conftest import REPO

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train_adapter"].update(selection=["class_balanced"], seeds=[0, 1], methods=dict(
        FEW_SHOT, linear={"steps": 20}), budgets={"ratios": [10, 100], "shots": [1, 4],
                                                  "seeds": [1, 2], "folds": 3})
    (features / "params.yaml").write_text(yaml.safe_dump(params))
    qformer = write_qformer(features / "qformer")
    common = ["--params", str(features / "params.yaml"), "--features",
              str(features / "extract" / BACKBONE), "--clip", str(features / "clip" / BACKBONE)]

    def train(out):
        run_by_hand(features, "train_adapter", BACKBONE, *common, "--qformer",
                    str(qformer), "--out", str(features / out))
        return {p.relative_to(features / out): p.read_bytes()
                for p in sorted((features / out).rglob("*")) if p.is_file()}

    before = train("before")
    run_by_hand(features, "evaluate", BACKBONE, *common, "--adapters", str(features / "before"),
                "--out", str(features / "evaluation"))
    permute_test_labels(features)
    after = train("after")
    assert len(before) > 20 and before == after

    assert json.loads((features / "before" / "ensemble" / "method.json").read_text())[
        "priors"] == ["attributes", "attributes_weak"]  # the params' priors, one folder each
    runs = pd.read_parquet(features / "before" / "ensemble" / "attributes" / "runs.parquet")
    assert runs["budget"].tolist() == ["100%", "100%", "10%", "10%"] + ["1-shot"] * 2 + \
        ["4-shot"] * 2
    one_shot = runs[runs["shots"] == 1]
    assert one_shot["selected_by"].str.startswith("fixed in advance").all()
    assert (one_shot["alpha"] == 1.0).all()  # the published default, recorded
    assert runs.loc[runs["shots"] == 4, "selected_by"].eq("3-fold CV on the kept images").all()

    results = pd.read_parquet(features / "evaluation" / "results.parquet")
    assert set(results["method"]) == {"linear", *FEW_SHOT}
    assert results["run"].is_unique
    few = results[results["method"] != "linear"]
    assert len(few) == (1 + 7 * 2) * 8  # the probe once, each text-prior method per prior
    assert set(few.loc[few["method"] == "probe", "prior"]) == {"none"}
    exact = few[few["prior"].isin(["none", "attributes"])]
    assert exact.groupby("method")["top1"].mean().min() > 90  # the classes are far apart


def test_a_misleading_prior_is_switched_off_where_the_kept_images_show_it(features, tmp_path):
    """The fixture's second description set puts each class's text at the next class's centre.
    The ensemble trains once per prior; wherever the kept images can be split, its CV picks
    alpha = 0 for the misleading one, so those classifiers are the probe's, weight for weight.
    Saving again replaces the folders whole; a folder of other files is refused."""
    from conftest import FINGERPRINT
    from pipeline.adapter.methods import load_adapters
    from pipeline.adapter.settings import TrainAdapter
    from pipeline.adapter.train import train_adapters
    from pipeline.common import InputError

    settings = TrainAdapter(
        seeds=[0], priors=["attributes", "attributes_weak"], methods={"probe": {}, "ensemble": {}},
        budgets={"ratios": [100], "shots": [1, 4], "seeds": [1, 2], "folds": 3})
    trained = train_adapters(features / "extract" / BACKBONE, FINGERPRINT,
                             write_qformer(tmp_path / "qformer"), settings, "cpu")
    trained.save(tmp_path / "adapters")
    loaded = load_adapters(tmp_path / "adapters", FINGERPRINT, ["probe", "ensemble"])
    assert [one.runs["prior"].iloc[0] for one in loaded["ensemble"]] == ["attributes",
                                                                          "attributes_weak"]
    (probe,), (_, weak) = loaded["probe"], loaded["ensemble"]
    assert weak.runs["run"].str.endswith("-attributes_weak").all()
    by_cv = weak.runs["selected_by"].str.contains("CV").to_numpy()
    assert by_cv.sum() == 4  # 4 shots and 100%, each over two seeds; 1 shot is fixed in advance
    assert (weak.runs.loc[by_cv, "alpha"] == 0.0).all()
    assert torch.equal(weak.weight[by_cv], probe.weight[by_cv])
    assert (weak.runs.loc[~by_cv, "alpha"] == 1.0).all()  # fixed_alpha: the misleading text in

    (tmp_path / "adapters" / "ensemble" / "old_prior").mkdir()
    trained.save(tmp_path / "adapters")
    assert not (tmp_path / "adapters" / "ensemble" / "old_prior").exists()
    assert sorted(p.name for p in (tmp_path / "adapters").iterdir()) == ["ensemble", "probe"]
    (tmp_path / "mine" / "probe").mkdir(parents=True)
    (tmp_path / "mine" / "probe" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="holds other files than a trained method"):
        trained.save(tmp_path / "mine")
    assert (tmp_path / "mine" / "probe" / "notes.txt").read_text() == "mine"


def test_the_ensemble_at_alpha_zero_is_the_probe(features):
    from pipeline.adapter.inputs import load_adapter_inputs
    from pipeline.adapter.methods.ensemble import Ensemble, train_ensemble
    from pipeline.adapter.methods.probe import Probe, train_probe
    from pipeline.adapter.settings import TrainAdapter
    from conftest import FINGERPRINT

    inputs = load_adapter_inputs(features / "extract" / BACKBONE, "attributes", FINGERPRINT,
                                 write_qformer(features / "qformer"), torch.device("cpu"))
    protocol = TrainAdapter(methods={"linear": {}}, budgets={"ratios": [50], "shots": [2]})
    probe = train_probe(inputs, protocol, Probe())
    ensemble = train_ensemble(inputs, protocol, Ensemble(alphas=[0.0]))
    assert (ensemble.runs["alpha"] == 0.0).all()
    assert torch.equal(probe.weight, ensemble.weight) and torch.equal(probe.bias, ensemble.bias)
    assert probe.runs["strength"].tolist() == ensemble.runs["strength"].tolist()
    # alpha fixed above 0: the saved classifier is the probe plus alpha x CLIP-scaled zero-shot
    from pipeline.adapter.few_shot import text_prototypes

    probe = train_probe(inputs, protocol, Probe(strengths=[1e-3]))
    mixed = train_ensemble(inputs, protocol, Ensemble(alphas=[0.5], strengths=[1e-3]))
    assert (mixed.runs["alpha"] == 0.5).all()
    images = inputs.features[:5].cpu()
    zero_shot = 100 * F.normalize(images, dim=-1) @ text_prototypes(inputs, "none").T
    assert torch.allclose(mixed.logits(images), probe.logits(images) + 0.5 * zero_shot,
                          atol=1e-3)


def test_inputs_without_a_qformer_hold_the_same_images_and_raw_texts(features):
    """A method that maps no text gets inputs loaded without the Q-Former: the same image rows
    and raw text rows, the same prototypes and so the same trained probe, and no mapped rows to
    read by mistake."""
    from pipeline.adapter.few_shot import text_prototypes
    from pipeline.adapter.inputs import load_adapter_inputs
    from pipeline.adapter.methods.text_prior import TextPrior, train_text_prior
    from pipeline.adapter.settings import TrainAdapter
    from conftest import FINGERPRINT

    folder = features / "extract" / BACKBONE
    mapped = load_adapter_inputs(folder, "attributes", FINGERPRINT,
                                 write_qformer(features / "qformer"), torch.device("cpu"))
    plain = load_adapter_inputs(folder, "attributes", FINGERPRINT, None, torch.device("cpu"))
    assert mapped.mapped and not plain.mapped
    images, texts = len(plain.table.images), plain.table.texts  # 30 train images, 3 texts
    assert (images, texts) == (30, 3) and len(plain.features) == images + texts
    assert len(mapped.features) == images + 2 * texts
    assert torch.equal(plain.features[:images], mapped.features[:images])
    assert torch.equal(plain.features[images:], mapped.features[mapped.raw_start:])
    assert torch.equal(plain.labels, torch.cat([mapped.labels[:images],
                                                mapped.labels[mapped.raw_start:]]))
    assert torch.equal(text_prototypes(plain, "none"), text_prototypes(mapped, "none"))
    with pytest.raises(ValueError, match="without a Q-Former"):
        text_prototypes(plain, "qformer")
    protocol = TrainAdapter(methods={"linear": {}}, budgets={"ratios": [50], "shots": [2]})
    a, b = (train_text_prior(inputs, protocol, TextPrior()) for inputs in (mapped, plain))
    assert torch.equal(a.weight, b.weight) and a.runs.equals(b.runs)


def test_bench_few_shot_times_every_few_shot_method_on_every_budget(tmp_path):
    """`fgvc bench few_shot` on a small random table: each few-shot method of the params timed
    once, having trained one classifier per budget cell; the linear grid named as not timed."""
    import yaml

    from conftest import REPO
    from pipeline.adapter.few_shot import protocol_budgets
    from pipeline.adapter.methods import ADAPTER_METHODS
    from pipeline.adapter.settings import TrainAdapter

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train_adapter"]["budgets"] = {"ratios": [50, 100], "shots": [1, 2], "seeds": [1, 2]}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    cells = len(protocol_budgets(TrainAdapter(**params["train_adapter"])))
    assert cells == (2 + 2) * 2  # every budget over budgets.seeds
    torch.set_num_threads(2)  # what the bench must set from train_adapter.cpu_threads (1)
    out = run_by_hand(tmp_path, "bench", "few_shot", "--train", "120", "--classes", "6",
                      "--width", "16", "--params", "params.yaml", "--json", "bench.json")
    figures = json.loads((tmp_path / "bench.json").read_text())
    protocol = TrainAdapter(**params["train_adapter"])
    mapping = [m for m in protocol.methods if ADAPTER_METHODS.get(m).maps_texts(protocol.methods[m])]
    few_shot = [m for m in protocol.methods if m not in mapping]
    assert mapping == ["linear"]  # the demo's text_prior reads raw texts
    assert [m["method"] for m in figures["methods"]] == few_shot
    assert all(m["classifiers"] == cells and m["seconds"] > 0 for m in figures["methods"])
    assert (figures["train"], figures["classes"], figures["width"]) == (120, 6, 16)
    assert figures["baseline_seconds"] > 0 and figures["threads"] == 1  # cpu_threads applies
    assert "120 train images x 6 classes, width 16, 8 budget cells" in out
    assert "not timed: linear (it trains on texts the Q-Former maps" in out
    assert all(f"{m:<12}" in out for m in few_shot)
    assert "goal at CUB's size" not in out  # said only at CUB's size


def test_the_bench_table_is_class_structured_and_balanced():
    """Classes balanced; the descriptions a prior that helps but misleads often: their class
    means classify far above chance, and far from every image."""
    from pipeline.bench.few_shot import random_inputs

    inputs = random_inputs(1000, 50, 768, 3, seed=0, device=torch.device("cpu"))
    assert not inputs.mapped and len(inputs.features) == 1000 + 50 * 3
    assert np.bincount(inputs.table.images["class_index"]).tolist() == [20] * 50
    images = F.normalize(inputs.features[:1000], dim=-1)
    texts = F.normalize(inputs.features[1000:].reshape(50, 3, 768).mean(1), dim=-1)
    zero_shot = (images @ texts.T).argmax(1).numpy() == inputs.table.images["class_index"]
    assert 0.3 < zero_shot.mean() < 0.9  # chance: 0.02
    again = random_inputs(1000, 50, 768, 3, seed=0, device=torch.device("cpu"))
    assert torch.equal(inputs.features, again.features)
    with pytest.raises(ValueError, match="at least two per class"):
        random_inputs(30, 20, 64, 3, seed=0, device=torch.device("cpu"))


def test_at_cubs_size_the_bench_prior_is_as_good_as_cbds_on_cub():
    """The module's claim, checked: at CUB's size the descriptions' class means classify about
    half the images (CBD on CUB with ViT-B/32: 52%)."""
    from pipeline.bench.few_shot import CUB_SIZE, random_inputs

    size = CUB_SIZE
    inputs = random_inputs(size["train"], size["classes"], size["width"], 10, seed=0,
                           device=torch.device("cpu"))
    n = size["train"]
    images = F.normalize(inputs.features[:n], dim=-1)
    texts = F.normalize(inputs.features[n:].reshape(size["classes"], 10, -1).mean(1), dim=-1)
    zero_shot = ((images @ texts.T).argmax(1) == inputs.labels[:n]).float().mean().item()
    assert 0.4 < zero_shot < 0.6


def test_every_few_shot_method_trains_the_same_bytes_with_or_without_the_mapped_rows(tmp_path):
    """The DVC stage of a few-shot method loads its inputs without the Q-Former (the rows shift:
    the raw texts start right after the images); by hand with `linear`, with it. Every method
    saves the same bytes either way, so the stage's path is the one test_no_test_label... checks
    twice."""
    from pipeline.adapter.inputs import AdapterInputs
    from pipeline.adapter.methods import ADAPTER_METHODS
    from pipeline.adapter.settings import TrainAdapter
    from pipeline.bench.few_shot import random_inputs

    plain = random_inputs(240, 6, 16, 3, seed=1, device=torch.device("cpu"))
    mapped_rows = torch.randn(plain.table.texts, 16)  # what a Q-Former would add
    images = len(plain.table.images)
    mapped = AdapterInputs(
        torch.cat([plain.features[:images], mapped_rows, plain.features[images:]]),
        torch.cat([plain.labels, plain.labels[images:]]), plain.table, plain.class_ids,
        plain.fingerprint, mapped=True)
    assert mapped.raw_start == images + plain.table.texts
    protocol = TrainAdapter(methods=dict(FEW_SHOT, linear={}),
                            budgets={"ratios": [50], "shots": [1, 4], "seeds": [1]})

    def saved(inputs, name, out):
        trained = ADAPTER_METHODS.get(name).train(inputs, protocol, protocol.methods[name])
        trained.save(out)
        return {p.name: p.read_bytes() for p in sorted(out.iterdir())}

    for name in FEW_SHOT:
        assert saved(plain, name, tmp_path / name / "plain") == saved(
            mapped, name, tmp_path / name / "mapped"), name


def test_tip_adapter_chooses_the_grid_point_held_out_logits_score_best():
    """train_tip computes each beta's cache once and weighs it per alpha; the (alpha, beta) it
    keeps must be the first best of the whole grid as `held_out_logits` scores each point."""
    from pipeline.adapter.few_shot import budget_images, first_best, kept_features, text_prototypes
    from pipeline.adapter.methods.tip import TipAdapter, held_out_logits, train_tip
    from pipeline.adapter.settings import TrainAdapter
    from pipeline.bench.few_shot import random_inputs

    inputs = random_inputs(240, 6, 16, 3, seed=2, device=torch.device("cpu"))
    protocol = TrainAdapter(methods={"linear": {}},
                            budgets={"ratios": [50, 100], "shots": [4, 8], "seeds": [0]})
    settings = TipAdapter()
    runs = train_tip(inputs, protocol, settings).runs.set_index("budget")
    zero_shot = text_prototypes(inputs, "none")
    grid = [(a, b) for a in settings.alphas for b in settings.betas]
    spread = 0
    for part in budget_images(inputs, protocol):
        x, y = kept_features(inputs, part), torch.as_tensor(part.labels)
        fold = torch.as_tensor(part.fold)
        accuracy = np.array([(held_out_logits(x, y, fold, zero_shot, a, b).argmax(1) == y)
                             .float().mean().item() for a, b in grid])
        spread = max(spread, accuracy.max() - accuracy.min())
        chosen = runs.loc[part.budget.label]
        assert (chosen["alpha"], chosen["beta"]) == grid[first_best(accuracy)], part.budget.label
    assert spread > 0.05  # the grid's points differ: a swapped alpha and beta would show


def lp_pp_reference(x, y, zero_shot, steps):
    """LP++ as its reference code trains it (FewShot-CLIP-Strong-Baseline,
    methods/linear_probe_p2.py), transcribed with autograd and torch's SGD: W at the class sums,
    SGD with momentum 0.9 at 4n / lambda_max(X^T X), alpha every 10 steps at
    n / (4 max_c sum (x . t_c)^2), from 250 x the mean class text score. With our two documented
    changes, so not the reference's own behaviour there: alpha's gradient is zeroed every step
    (the reference lets it accumulate) and b starts at 0."""
    n, classes = len(x), len(zero_shot)
    hot = F.one_hot(y, classes).double()
    lr_w = 4 * n / float(np.linalg.eigh((x.T @ x).numpy())[0].max())
    text = x @ zero_shot.T
    lr_alpha = n / (4 * float(text.square().sum(dim=0).max()))
    alpha_tilde = (hot * text).sum(dim=0) / hot.sum(dim=0)
    classifier = torch.nn.Linear(x.shape[1], classes).double()
    classifier.weight.data = hot.T @ x
    classifier.bias.data.zero_()
    alpha = (250 * alpha_tilde.mean() * torch.ones(1, classes, dtype=torch.float64)
             ).requires_grad_(True)
    optimizer = torch.optim.SGD(classifier.parameters(), lr_w, momentum=0.9)
    for epoch in range(steps):
        logits = classifier(x) + torch.ones(n, 1, dtype=torch.float64) @ alpha * text
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad()
        alpha.grad = None
        loss.backward()
        optimizer.step()
        if (epoch + 1) % 10 == 0:
            alpha.data -= lr_alpha * alpha.grad.data
    return classifier.weight.detach() + alpha.detach().T * zero_shot, classifier.bias.detach()


def test_lp_pp_trains_by_its_reference_rule_and_its_heads_as_if_alone(blobs):
    from pipeline.adapter.methods.lp_pp import lp_pp_path

    x, y = blobs
    zero_shot = F.normalize(torch.randn(3, 6, dtype=torch.float64), dim=-1)
    path = lp_pp_path(x, y, torch.ones(1, 30), zero_shot, steps=40, alpha_every=10,
                      eval_every=20)
    assert len(path) == 2  # after 20 and 40 steps
    for steps, (weight, bias) in zip((20, 40), path):
        expected_w, expected_b = lp_pp_reference(x, y, zero_shot, steps)
        assert torch.allclose(weight[0], expected_w, atol=1e-8)
        assert torch.allclose(bias[0], expected_b, atol=1e-8)
    # two heads at once, one on a subset of rows: each as it trains alone
    mask = torch.ones(2, 30)
    mask[1, :12] = 0
    (weight, bias), = lp_pp_path(x, y, mask, zero_shot, 30, 10, 30)
    alone_w, alone_b = lp_pp_reference(x[12:], y[12:], zero_shot, 30)
    assert torch.allclose(weight[1], alone_w, atol=1e-8)
    assert torch.allclose(bias[1], alone_b, atol=1e-8)
    assert not torch.allclose(weight[0], weight[1], atol=1e-3)


def tip_f_reference(x, y, zero_shot, epochs, batch_size, lr, alpha, beta, seed):
    """Tip-Adapter-F's key fine-tuning as run_tip_adapter_F runs it (gaopengcuhk/Tip-Adapter
    main.py), transcribed with autograd: the keys an nn.Linear started at the kept features,
    AdamW (eps 1e-4), a cosine schedule over every step, CE of Tip's logits at the initial
    alpha and beta, on our batch order."""
    n, classes = len(x), len(zero_shot)
    adapter = torch.nn.Linear(x.shape[1], n, bias=False)
    adapter.weight = torch.nn.Parameter(x.clone())
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=lr, eps=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer,
                                                           epochs * -(-n // batch_size))
    values = F.one_hot(y, classes).float()
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for batch in torch.randperm(n, generator=generator).split(batch_size):
            affinity = adapter(x[batch])
            cache_logits = ((-1) * (beta - beta * affinity)).exp() @ values
            loss = F.cross_entropy(100. * x[batch] @ zero_shot.T + cache_logits * alpha,
                                   y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
    return adapter.weight.detach()


@pytest.mark.parametrize("sizes", [(10, 10, 10), (10, 9, 8), (20, 5, 5)],
                         ids=["equal classes", "unequal", "one large class"])
def test_tip_adapter_f_fine_tunes_its_keys_as_the_reference_does(blobs, sizes):
    """fine_tune_keys against the reference loop, on classes of equal and unequal sizes: the
    cache summed over class rows of slots (some empty where classes differ in size), and where
    one class is much larger than the others (empty slots would cost more than they save) by
    the one-hot matmul."""
    from pipeline.adapter.methods.tip_f import TipAdapterF, fine_tune_keys

    x, y = blobs
    rows = torch.argsort(y, stable=True)[:sum(sizes)]  # blob 0's rows, then 1's, then 2's
    x, y = x[rows].float(), torch.arange(3).repeat_interleave(torch.tensor(sizes))
    zero_shot = F.normalize(torch.randn(3, 6), dim=-1)
    settings = TipAdapterF(epochs=4, batch_size=8, lr=0.01, fixed_alpha=2.0, fixed_beta=3.0)
    tuned = fine_tune_keys(x, y, zero_shot, settings, seed=5)
    expected = tip_f_reference(x, y, zero_shot, 4, 8, 0.01, 2.0, 3.0, seed=5)
    assert torch.allclose(tuned, expected, atol=1e-5)
    assert (tuned - x).abs().max() > 1e-2  # the keys did move


def test_cache_slots_hold_each_class_keys_in_its_own_row():
    from pipeline.adapter.methods.tip_f import class_slots

    labels = torch.tensor([2, 0, 2, 1, 0, 2])
    slot_key, key_slot = class_slots(labels, 3)
    # m = 3 (class 2's count); class c's keys in slots 3c.., in their order; 6 marks empty
    assert slot_key.tolist() == [1, 4, 6, 3, 6, 6, 0, 2, 5]
    assert torch.equal(slot_key[key_slot], torch.arange(6))
    assert torch.equal(key_slot // 3, labels)


def test_tip_adapter_f_with_keys_that_cannot_move_chooses_as_tip_adapter():
    """At a vanishing learning rate the fine-tuned keys are the kept features: Tip-Adapter-F's
    cross-validation must then choose Tip-Adapter's alpha and beta on every budget (its held-out
    caches are the other folds' keys, scaled to the full cache)."""
    from pipeline.adapter.methods.tip import TipAdapter, train_tip
    from pipeline.adapter.methods.tip_f import TipAdapterF, train_tip_f
    from pipeline.adapter.settings import TrainAdapter
    from pipeline.bench.few_shot import random_inputs

    inputs = random_inputs(240, 6, 16, 3, seed=2, device=torch.device("cpu"))
    protocol = TrainAdapter(methods={"linear": {}},
                            budgets={"ratios": [50, 100], "shots": [1, 4, 8], "seeds": [1]})
    tip = train_tip(inputs, protocol, TipAdapter()).runs
    frozen = train_tip_f(inputs, protocol, TipAdapterF(lr=1e-12, epochs=1))
    pd.testing.assert_frame_equal(frozen.runs[["budget", "alpha", "beta", "selected_by"]],
                                  tip[["budget", "alpha", "beta", "selected_by"]])
    assert len(set(zip(tip["alpha"], tip["beta"]))) > 1  # the budgets chose differently


def test_lp_pp_with_one_step_count_runs_it_without_cross_validation(monkeypatch):
    """eval_every = steps leaves one candidate: no fold is trained, every budget runs all the
    steps, and the runs table says nothing was chosen."""
    import pipeline.adapter.methods.lp_pp as lp_pp
    from pipeline.adapter.settings import TrainAdapter
    from pipeline.bench.few_shot import random_inputs

    inputs = random_inputs(120, 4, 8, 3, seed=3, device=torch.device("cpu"))
    protocol = TrainAdapter(methods={"linear": {}},
                            budgets={"ratios": [100], "shots": [4], "seeds": [1]})
    paths = []  # (heads, rows) of each path trained
    path = lp_pp.lp_pp_path
    monkeypatch.setattr(lp_pp, "lp_pp_path", lambda x, y, mask, *a: paths.append(mask.shape)
                        or path(x, y, mask, *a))
    runs = lp_pp.train_lp_pp(inputs, protocol,
                             lp_pp.LinearProbePlusPlus(steps=30, eval_every=30)).runs
    assert paths == [(1, 120), (1, 16)]  # each budget's one path on all its kept images
    assert runs["steps"].tolist() == [30, 30]
    assert (runs["selected_by"] == "none to choose").all()
    paths.clear()
    runs = lp_pp.train_lp_pp(inputs, protocol,
                             lp_pp.LinearProbePlusPlus(steps=30, eval_every=10)).runs
    # under CV, each fold's path on the other folds' rows alone (4 shots over 3 folds: 2, 1, 1
    # a class), then one on all of them
    assert paths == [(1, 80)] * 3 + [(1, 120)] + [(1, 8), (1, 12), (1, 12), (1, 16)]
    assert runs["selected_by"].str.contains("CV").all()


def test_lp_pp_held_out_heads_are_the_masked_heads_on_every_row(blobs):
    """held_out_correct trains each fold's path on the other folds' rows alone: its verdict on
    each held-out image after each candidate step count is the one of lp_pp_path's heads that
    train on all rows with the fold masked out (as the cross-validation first did)."""
    from pipeline.adapter.methods.lp_pp import LinearProbePlusPlus, held_out_correct, lp_pp_path

    x, y = blobs
    zero_shot = F.normalize(torch.randn(3, 6, dtype=torch.float64), dim=-1)
    fold = torch.arange(30) // 3 % 3  # 3 folds (of 12, 9, 9 images), each with every class
    settings = LinearProbePlusPlus(steps=40, eval_every=10)
    correct = held_out_correct(x, y, fold, zero_shot, settings)
    assert correct.shape == (4, 30)
    masked = lp_pp_path(x, y, fold[None, :] != torch.arange(3)[:, None], zero_shot, 40, 10, 10)
    alone = [lp_pp_path(x[fold != f], y[fold != f],
                        torch.ones(1, int((fold != f).sum()), dtype=x.dtype), zero_shot, 40, 10,
                        10) for f in range(3)]
    for k, (weight, bias) in enumerate(masked):
        logits = torch.einsum("nd,fcd->fnc", x, weight) + bias[:, None, :]  # (folds, n, C)
        own = logits[fold, torch.arange(30)]  # each image under its own fold's head
        assert torch.equal(correct[k], own.argmax(dim=1) == y), k
        for f in range(3):  # the same heads: a fold's path alone is its masked head
            assert torch.allclose(alone[f][k][0][0], weight[f], atol=1e-10)
            assert torch.allclose(alone[f][k][1][0], bias[f], atol=1e-10)
    assert 0 < correct.float().mean() < 1  # neither all right nor all wrong: the check can fail


def test_adapters_train_with_subnormals_flushed_and_torch_is_left_as_it_was():
    """Subnormal floats (probabilities of classes a converged probe rules out) run many times
    slower on the CPU: training flushes them to zero, and only while it trains."""
    from pipeline.adapter.few_shot import denormals_flushed

    tiny = torch.tensor([1e-39])  # below float32's normal range, above its smallest subnormal
    can = torch.set_flush_denormal(False)  # torch's default; True where the CPU can flush
    assert (tiny * 1.5).item() > 0
    with denormals_flushed():
        assert ((tiny * 1.5).item() == 0.0) == can  # x86 with SSE3: every CI machine can
    assert (tiny * 1.5).item() > 0


def test_budgets_trained_on_two_cpu_workers_are_the_same_bits_as_one_after_another():
    """train_adapter.cpu_threads: 2 trains two budgets at once, each on one torch thread: every
    method's weights, keys and chosen values are those of one budget after another on one
    thread, in the budgets' order, and torch's thread count is left as it was."""
    from pipeline.adapter.few_shot import denormals_flushed
    from pipeline.adapter.methods import ADAPTER_METHODS
    from pipeline.adapter.settings import TrainAdapter
    from pipeline.bench.few_shot import random_inputs

    inputs = random_inputs(240, 6, 16, 3, seed=4, device=torch.device("cpu"))
    names = ["probe", "ensemble", "text_prior", "tip", "tip_f", "zs_lp", "clap", "lp_pp"]
    small = {"tip_f": {"epochs": 2}, "lp_pp": {"steps": 40}}
    trained = {}
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        for workers in (1, 2):
            protocol = TrainAdapter(methods={name: small.get(name, {}) for name in names},
                                    cpu_threads=workers,
                                    budgets={"ratios": [50, 100], "shots": [1, 4], "seeds": [1, 2]})
            with denormals_flushed():
                trained[workers] = {name: ADAPTER_METHODS.get(name).train(
                    inputs, protocol, protocol.methods[name]) for name in names}
            assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    for name in names:
        one, two = trained[1][name], trained[2][name]
        pd.testing.assert_frame_equal(one.runs, two.runs)
        assert len(one.runs) == 8  # 4 budgets x 2 seeds, in the budgets' order in both
        if hasattr(one, "keys"):  # Tip-Adapter's caches
            assert one.starts == two.starts
            tensors = (one.keys, two.keys), (one.key_labels, two.key_labels)
        else:
            tensors = (one.weight, two.weight), (one.bias, two.bias)
        for a, b in tensors:
            assert torch.equal(a, b), name
