"""The offline demo world: a small CUB-like and COCO-like dataset drawn from a seed.

Everything is laid out on disk exactly as the real datasets are (SPEC section 5), so the very
readers that index CUB_200_2011, text_c10 and COCO/Karpathy serve the demo too:

    <root>/CUB_200_2011/{classes,images,image_class_labels,train_test_split}.txt
    <root>/CUB_200_2011/images/<NNN.Class_Name>/<Class_Name>_<k>_<id>.jpg
    <root>/CUB_200_2011/attributes/{attributes.txt,class_attribute_labels_continuous.txt}
    <root>/text_c10/<NNN.Class_Name>/<image stem>.txt          (Reed: 10 captions a line each)
    <root>/coco/{train2014,val2014}/COCO_<folder>_<id:012>.jpg
    <root>/coco/annotations/captions_{train,val}2014.json
    <root>/coco/dataset_coco.json                               (Karpathy split)

COCO-like images show random attribute combinations, not the CUB-like classes: like the web
data CLIP and the Q-Former learn from, they teach the vocabulary, not the species.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.data.bird_attributes import ATTRIBUTE_KINDS, attribute_names, make_classes
from pipeline.data.bird_drawing import SCENES, draw_bird
from pipeline.data.captions import coco_caption, reed_caption
from pipeline.data.settings import DemoWorldSpec


def _rng(spec: DemoWorldSpec, stream: int, index: int) -> np.random.Generator:
    # One independent generator per image: any image can be redrawn alone, identically.
    return np.random.default_rng([spec.seed, stream, index])


def _write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))


def _write_cub(root: Path, spec: DemoWorldSpec, show_progress: bool) -> None:
    classes = make_classes(spec.num_classes, spec.seed)
    cub, reed = root / "CUB_200_2011", root / "text_c10"
    class_dirs = [f"{i + 1:03d}.{c.name.replace(' ', '_')}" for i, c in enumerate(classes)]
    _write_lines(cub / "classes.txt", [f"{i + 1} {d}" for i, d in enumerate(class_dirs)])
    names = attribute_names()
    _write_lines(cub / "attributes" / "attributes.txt", [f"{i + 1} {n}" for i, n in enumerate(names)])
    _write_lines(cub / "attributes" / "class_attribute_labels_continuous.txt",
                 [" ".join(f"{v:.6f}" for v in c.attribute_percentages()) for c in classes])

    images, labels, split = [], [], []
    per_class = spec.train_per_class + spec.test_per_class
    total = per_class * len(classes)
    bar = tqdm(total=total, desc="demo CUB images", unit="img", disable=not show_progress)
    for class_index, (bird, class_dir) in enumerate(zip(classes, class_dirs)):
        stem_prefix = class_dir.split(".", 1)[1]
        for k in range(per_class):
            image_id = class_index * per_class + k + 1
            rng = _rng(spec, 1, image_id)
            attrs = bird.sample(rng)
            scene = str(rng.choice(list(SCENES)))
            stem = f"{stem_prefix}_{k + 1:04d}_{image_id}"
            path = cub / "images" / class_dir / f"{stem}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            draw_bird(attrs, scene, spec.image_size, rng).save(path, quality=92)
            captions = [reed_caption(attrs, rng) for _ in range(spec.captions_per_image)]
            _write_lines(reed / class_dir / f"{stem}.txt", captions)
            images.append(f"{image_id} {class_dir}/{stem}.jpg")
            labels.append(f"{image_id} {class_index + 1}")
            # Spread the train images evenly among the class's images, as CUB's split does.
            is_train = (k * spec.train_per_class) // per_class != (
                (k + 1) * spec.train_per_class) // per_class
            split.append(f"{image_id} {int(is_train)}")
            bar.update()
    bar.close()
    _write_lines(cub / "images.txt", images)
    _write_lines(cub / "image_class_labels.txt", labels)
    _write_lines(cub / "train_test_split.txt", split)


def _karpathy_split(index: int, total: int) -> str:
    # Karpathy's COCO split: 5k val, 5k test, 30k restval of 123k; here in the same proportions.
    fraction = index / total
    return "val" if fraction < 0.04 else "test" if fraction < 0.08 else (
        "restval" if fraction < 0.3 else "train")


def _write_coco(root: Path, spec: DemoWorldSpec, show_progress: bool) -> None:
    coco = root / "coco"
    folders: dict[str, dict[str, list]] = {
        "train2014": {"images": [], "annotations": []}, "val2014": {"images": [], "annotations": []}}
    karpathy = []
    choices = {kind: values for kind, (_, values) in ATTRIBUTE_KINDS.items()}
    annotation_id = 0
    for index in tqdm(range(spec.coco_images), desc="demo COCO images", unit="img",
                      disable=not show_progress):
        rng = _rng(spec, 2, index)
        image_id = 100_000 + index
        split = _karpathy_split(index, spec.coco_images)
        folder = "train2014" if split == "train" else "val2014"
        file_name = f"COCO_{folder}_{image_id:012d}.jpg"
        attrs = {kind: str(rng.choice(values)) for kind, values in choices.items()}
        scene = str(rng.choice(list(SCENES)))
        (coco / folder).mkdir(parents=True, exist_ok=True)
        draw_bird(attrs, scene, spec.image_size, rng).save(coco / folder / file_name, quality=92)
        captions = [coco_caption(attrs, scene, rng) for _ in range(spec.coco_captions_per_image)]
        folders[folder]["images"].append({"id": image_id, "file_name": file_name,
                                          "width": spec.image_size, "height": spec.image_size})
        for caption in captions:
            annotation_id += 1
            folders[folder]["annotations"].append(
                {"id": annotation_id, "image_id": image_id, "caption": caption})
        karpathy.append({"cocoid": image_id, "filepath": folder, "filename": file_name,
                         "split": split, "sentences": [{"raw": c} for c in captions]})
    (coco / "annotations").mkdir(parents=True, exist_ok=True)
    for folder, content in folders.items():
        (coco / "annotations" / f"captions_{folder}.json").write_text(json.dumps(content))
    (coco / "dataset_coco.json").write_text(json.dumps({"dataset": "coco", "images": karpathy}))


def generate_demo_world(root: Path, spec: DemoWorldSpec, show_progress: bool = True) -> None:
    """Draw the whole demo world under `root`, atomically: a half-written world never appears."""
    root = Path(root)
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    _write_cub(partial, spec, show_progress)
    _write_coco(partial, spec, show_progress)
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)
