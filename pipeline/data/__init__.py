"""Datasets as index tables (the `data` stage): readers of the real layouts (CUB-200-2011,
Reed's captions, COCO 2014 with Karpathy's split) and the procedurally drawn demo world, which
is written in those same layouts and read by the same readers.
"""

from pipeline.data.coco import read_coco_annotations, read_karpathy_coco
from pipeline.data.cub import (DatasetLayoutError, read_cub_attributes, read_cub_classes,
                               read_cub_images, read_reed_captions)
from pipeline.data.demo_world import DemoWorldSpec, generate_demo_world

__all__ = ["DatasetLayoutError", "DemoWorldSpec", "generate_demo_world", "read_coco_annotations",
           "read_cub_attributes", "read_cub_classes", "read_cub_images", "read_karpathy_coco",
           "read_reed_captions"]
