"""Stage `data`: materialise the datasets named in params as index tables.

demo: draw the demo world under <world> and index it with the real readers.
real: index the CUB_200_2011 / text_c10 / COCO folders named in params (images stay there;
      <world>/<dataset>/SOURCE.json records where).

Outputs (in <out>): cub_images, cub_classes, cub_attributes, reed_captions, coco_images,
coco_captions (.parquet). Image tables carry their dataset root in the schema metadata
(`fgvc.root`), paths in the table are relative to it.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.common import InputError, write_json, write_parquet
from stages.common import PARAMS_OPTION
from stages.layout import artifact_option
from stages.params import ParamsError, load_params

ROOT_KEYS = ("cub_root", "reed_root", "coco_root", "karpathy_json")  # data.*: where real data is


def main(world: Path = artifact_option("data", "world", help="Where the demo world is drawn."),
         out: Path = artifact_option("data", "index", help="Folder for the index tables."),
         params: Path = PARAMS_OPTION) -> None:
    """Materialise the datasets (demo world, or real CUB/COCO folders) as Parquet index tables."""
    from pipeline.data import (DatasetLayoutError, DemoWorldSpec, generate_demo_world,
                               read_coco_annotations, read_cub_attributes, read_cub_classes,
                               read_cub_images, read_karpathy_coco, read_reed_captions)

    config = load_params(params).data
    if config.source == "demo":
        generate_demo_world(world, DemoWorldSpec(**config.demo.model_dump()))
        cub_root, reed_root, coco_root = world / "CUB_200_2011", world / "text_c10", world / "coco"
        karpathy = coco_root / "dataset_coco.json"
        key = dict.fromkeys(ROOT_KEYS, f"the demo world in {world}")
    else:
        missing = [k for k in ("cub_root", "reed_root", "coco_root") if getattr(config, k) is None]
        if missing:
            raise ParamsError(f"{params}: data.source is 'real' but data."
                              f"{', data.'.join(missing)} not set")
        cub_root, reed_root, coco_root = (Path(config.cub_root), Path(config.reed_root),
                                          Path(config.coco_root))
        karpathy = Path(config.karpathy_json) if config.karpathy_json else None
        key = {name: f"data.{name} = {getattr(config, name)}" for name in ROOT_KEYS}
        # The real files stay where they are; the world folder (a DVC output) only says where.
        for name, root in (("CUB_200_2011", cub_root), ("text_c10", reed_root), ("coco", coco_root)):
            write_json(world / name / "SOURCE.json",
                       {"source": "real", "root": str(root.resolve())})

    def read(what: str, reader, *args):
        """A reader's layout error names the params key that points at the folder."""
        try:
            return reader(*args)
        except DatasetLayoutError as error:
            raise InputError(f"{key[what]}: {error}") from None

    cub_images = read("cub_root", read_cub_images, cub_root)
    tables = {
        "cub_images": (cub_images, cub_root),
        "cub_classes": (read("cub_root", read_cub_classes, cub_root), None),
        "cub_attributes": (read("cub_root", read_cub_attributes, cub_root), None),
        "reed_captions": (read("reed_root", read_reed_captions, reed_root, cub_images), None),
    }
    coco_images, coco_captions = (read("karpathy_json", read_karpathy_coco, karpathy) if karpathy
                                  else read("coco_root", read_coco_annotations, coco_root))
    tables["coco_images"] = (coco_images, coco_root)
    tables["coco_captions"] = (coco_captions, None)
    for name, (table, root) in tables.items():
        write_parquet(out / f"{name}.parquet", table,
                      {"fgvc.root": str(root)} if root else None)
    print(f"data: {len(cub_images)} CUB images in {cub_images['class_id'].nunique()} classes "
          f"({(cub_images['split'] == 'train').sum()} train), {len(tables['reed_captions'][0])} "
          f"Reed captions, {len(coco_images)} COCO images, {len(coco_captions)} COCO captions")
