"""Frozen-CLIP features in resumable Parquet shards (the `extract` stage writes them; every
training and scoring stage reads them).

`store`: the shard format, resume, manifest and readers. `images` and `texts`: encoding image
files and texts into a feature set; `encoding` what both share. `decoding` turns any image file
into RGB or names why not; `preprocessing` is CLIP's preprocessing cut at 8-bit pixels, and
resizes whole batches on the device (with `resampling`, Pillow's filter as matrices);
`device_decoding` decodes JPEGs on the GPU; `ray_engine` spreads image decoding and encoding over
a Ray cluster (optional: needs `ray`).
"""

from pipeline.features.device_decoding import DEVICE_DECODERS
from pipeline.features.encoding import ExtractOptions, ExtractResult
from pipeline.features.images import TooManyBadImages, extract_image_features, local_image_batches
from pipeline.features.store import (FeatureSet, RaggedTokens, iter_shards, read_feature_set,
                                     write_feature_set)
from pipeline.features.texts import extract_text_features, token_width

__all__ = ["DEVICE_DECODERS", "ExtractOptions", "ExtractResult", "FeatureSet", "RaggedTokens",
           "RayImageEngine", "TooManyBadImages", "extract_image_features",
           "extract_text_features", "iter_shards", "local_image_batches", "read_feature_set",
           "token_width", "write_feature_set"]


def __getattr__(name: str):
    if name == "RayImageEngine":  # imported on use: ray is an optional dependency
        from pipeline.features.ray_engine import RayImageEngine
        return RayImageEngine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
