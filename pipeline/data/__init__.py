"""Datasets as index tables (the `data` stage): target formats by registry (`formats`: CUB-200-2011,
ImageFolder-style `<class>/<image>` folders, and the sets that list their images in files:
Oxford-IIIT Pet, Flowers-102, FGVC-Aircraft, Food-101, Stanford Cars, whose shared parsing is
`listed`), the class names the references prompted with (`reference_names`: CBD's for CUB,
CLIP's for the suite; `data.target.names`), per-image captions in Reed's layout, COCO 2014
with Karpathy's split, the check that every listed image exists (`checks`), the stage's entry
(`index`), and the procedurally drawn demo world, written in the real layouts and read by the
same readers. `settings`: the `data` params section.
"""

from pipeline.config import lazy_exports

_EXPORTS = {
    "require_images": "checks", "read_coco_annotations": "coco", "read_karpathy_coco": "coco",
    "DatasetLayoutError": "cub", "read_cub_attributes": "cub", "read_cub_classes": "cub",
    "read_cub_images": "cub", "read_reed_captions": "cub", "generate_demo_world": "demo_world",
    "read_imagefolder": "imagefolder", "choose_class_names": "reference_names",
    "ReferenceList": "reference_names", "DatasetIndex": "index", "INDEX_TABLES": "index",
    "index_datasets": "index", "Data": "settings", "DemoWorldSpec": "settings",
    "TargetSettings": "settings",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
