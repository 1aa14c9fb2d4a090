"""Datasets as index tables (the `data` stage): readers of the real layouts (CUB-200-2011,
Reed's captions, COCO 2014 with Karpathy's split, ImageFolder-style `<class>/<image>` folders),
the check that every listed image exists, and the procedurally drawn demo world, which is written
in the real layouts and read by the same readers.
"""

from pipeline.data.checks import require_images
from pipeline.data.coco import read_coco_annotations, read_karpathy_coco
from pipeline.data.cub import (DatasetLayoutError, read_cub_attributes, read_cub_classes,
                               read_cub_images, read_reed_captions)
from pipeline.data.demo_world import DemoWorldSpec, generate_demo_world
from pipeline.data.imagefolder import read_imagefolder

__all__ = ["DatasetLayoutError", "DemoWorldSpec", "generate_demo_world", "read_coco_annotations",
           "read_cub_attributes", "read_cub_classes", "read_cub_images", "read_imagefolder",
           "read_karpathy_coco", "read_reed_captions", "require_images"]
