import numpy as np
import pandas as pd

from pipeline.adapter.selection import keep_mask
from pipeline.adapter.training_mix import Run, build_training_table, run_pool, run_rows, table1_runs


def tiny_world():
    # 2 classes x (4 train + 1 test) images, 10 captions each, 3 descriptions per class
    images = pd.DataFrame({"image_id": np.arange(1, 11), "class_id": np.repeat([7, 9], 5),
                           "split": ["train"] * 4 + ["test"] + ["train"] * 4 + ["test"]})
    captions = pd.DataFrame({"image_id": np.repeat(np.arange(1, 11), 10)})
    descriptions = pd.DataFrame({"class_id": np.repeat([7, 9], 3)})
    return build_training_table(images, captions, descriptions, np.array([7, 9]))


def test_training_table_layout():
    table, train, captions_train = tiny_world()
    assert train.sum() == 8 and captions_train.sum() == 80
    assert table.images["class_index"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert len(table.labels) == 8 + 80 + 6
    assert table.labels[-6:].tolist() == [0, 0, 0, 1, 1, 1]


def test_pools_replace_each_dropped_image_by_its_text():
    table, _, _ = tiny_world()
    rows, kept = run_pool(Run(50, "none", "class_balanced", 0), table, descriptions_per_image=10)
    assert len(kept) == 4 and len(rows) == 4 and (rows < 8).all()
    rows, kept = run_pool(Run(50, "captions", "class_balanced", 0), table, descriptions_per_image=10)
    caption_rows = rows[rows >= 8] - 8
    assert len(caption_rows) == 4 * 10  # the 10 captions of each of the 4 replaced images
    replaced = set(table.images["image_id"]) - set(kept)
    assert set(table.captions["image_id"].to_numpy()[caption_rows]) == replaced
    rows, kept = run_pool(Run(50, "descriptions", "class_balanced", 0), table, descriptions_per_image=10)
    description_rows = rows[rows >= 88]
    assert len(description_rows) == 4 * 10
    # 2 replaced images per class x 10 = 20 per class, cycling through its 3 descriptions
    assert np.bincount(table.labels[description_rows]).tolist() == [20, 20]
    assert np.bincount(description_rows - 88).tolist() == [7, 7, 6, 7, 7, 6]
    rows, kept = run_pool(Run(0, "captions", "class_balanced", 0), table, descriptions_per_image=10)
    assert len(kept) == 0 and len(rows) == 80


def test_table1_has_thirty_cells_per_selection_and_seed():
    runs = table1_runs(["class_balanced", "global"], [0, 1], ("qformer",), ("captions", "descriptions"))
    assert len(runs) == 2 * 2 * 30
    assert len({r.name for r in runs}) == len(runs)
    cells = {(r.image_ratio, r.text_source) for r in runs}
    assert (100, "none") in cells and (0, "descriptions") in cells
    assert (0, "none") not in cells and (100, "captions") not in cells


def test_validation_images_are_held_out_of_every_run():
    # 2 classes x 20 train images (+1 test each), 10 captions per image, 3 descriptions per class
    images = pd.DataFrame({"image_id": np.arange(1, 43), "class_id": np.repeat([7, 9], 21),
                           "split": (["train"] * 20 + ["test"]) * 2})
    captions = pd.DataFrame({"image_id": np.repeat(np.arange(1, 43), 10)})
    descriptions = pd.DataFrame({"class_id": np.repeat([7, 9], 3)})
    table, _, _ = build_training_table(images, captions, descriptions, np.array([7, 9]))
    ids = table.images["image_id"].to_numpy()
    runs = table1_runs(["class_balanced", "global"], [0, 1], ("qformer",), ("captions", "descriptions"))
    for run in runs:
        part = run_rows(run, table, descriptions_per_image=10, val_fraction=0.2)
        assert np.bincount(table.labels[part.val_rows]).tolist() == [4, 4]  # class-balanced
        val_ids = set(ids[part.val_rows])
        assert not val_ids & set(part.kept_ids)
        assert not set(part.val_rows) & set(part.pool)  # not trained on as images...
        caption_rows = part.pool[part.pool >= 40] - 40 if run.text_source == "captions" else []
        assert not val_ids & set(table.captions["image_id"].to_numpy()[caption_rows])  # nor captions
        same_seed = run_rows(Run(50, "none", "global", run.seed), table, 10, 0.2)
        assert np.array_equal(part.val_rows, same_seed.val_rows)  # one slice per seed
        if run.image_ratio == 100:
            assert len(part.kept_ids) == 32  # (100, 0) keeps every image but the slice
        if run.text_source == "captions" and run.image_ratio == 0:
            assert len(part.pool) == 32 * 10  # the captions of the 32 images not held out
    slices = {seed: run_rows(Run(100, "none", "class_balanced", seed), table, 10, 0.2).val_rows
              for seed in (0, 1)}
    assert not np.array_equal(slices[0], slices[1])


def test_no_validation_keeps_the_draw_over_all_images():
    table, _, _ = tiny_world()
    labels, ids = table.images["class_index"].to_numpy(), table.images["image_id"].to_numpy()
    for run in table1_runs(["class_balanced", "global"], [0, 3], ("qformer",), ("captions", "descriptions")):
        part = run_rows(run, table, descriptions_per_image=10, val_fraction=0.0)
        mask = keep_mask(labels, run.image_ratio / 100, run.selection, run.seed)
        assert np.array_equal(part.kept_ids, ids[mask]) and len(part.val_rows) == 0
        assert np.array_equal(part.pool, run_pool(run, table, descriptions_per_image=10)[0])


def test_the_ablation_trains_on_the_same_texts_unmapped():
    """`text_mapping: none`: the same pool as the Q-Former twin, its text rows moved to the raw
    copies stacked after the mapped ones; image rows and the batch order unchanged."""
    table, _, _ = tiny_world()
    runs = table1_runs(["class_balanced"], [0], ("qformer", "none"), ("captions", "descriptions"))
    assert len(runs) == 30 + 20 and len({r.name for r in runs}) == 50
    assert not [r for r in runs if r.text_source == "none" and r.text_mapping == "none"]
    texts = len(table.captions) + len(table.descriptions)  # 80 + 6
    for source in ("captions", "descriptions"):
        mapped = Run(30, source, "class_balanced", 0)
        raw = Run(30, source, "class_balanced", 0, "none")
        assert raw.name == f"img030-{source}_unmapped-class_balanced-s0"
        assert raw.stream_seed == mapped.stream_seed
        rows, kept = run_pool(mapped, table, descriptions_per_image=10)
        raw_rows, raw_kept = run_pool(raw, table, descriptions_per_image=10)
        assert np.array_equal(kept, raw_kept)
        images = rows < len(table.images)
        assert np.array_equal(raw_rows[images], rows[images])
        assert np.array_equal(raw_rows[~images], rows[~images] + texts)
        assert (raw_rows[~images] >= len(table.labels)).all()  # beyond the mapped rows
