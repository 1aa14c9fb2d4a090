"""Frozen-CLIP features in resumable Parquet shards (the `extract` stages write them; every
training and scoring stage reads them).

`sets`: the feature sets of a backbone and the stages' entry, `extract_feature_set`. `store`:
the shard format, resume, manifest and readers. `images` and `texts`: encoding image files and
texts into a feature set; `encoding` what both share; `templates` the prompt sets that become
text sets. `decoding` turns any image file into RGB or names why not; `preprocessing` is CLIP's
preprocessing cut at 8-bit pixels, and resizes whole batches on the device (with `resampling`,
Pillow's filter as matrices); `device_decoding` decodes JPEGs on the GPU; `ray_engine` spreads
image decoding and encoding over a Ray cluster (optional: needs `ray`). `settings`: the
`extract` params section. Names load on first use.
"""

from pipeline.config import lazy_exports

_EXPORTS = {
    "DEVICE_DECODERS": "device_decoding", "ExtractResult": "encoding",
    "TooManyBadImages": "images", "extract_image_features": "images",
    "local_image_batches": "images", "RayImageEngine": "ray_engine",
    "FEATURE_SETS": "sets", "SetSources": "sets", "extract_feature_set": "sets",
    "set_folder": "sets", "ExtractSettings": "settings", "FeatureSet": "store",
    "RaggedTokens": "store", "iter_shards": "store", "read_feature_set": "store",
    "write_feature_set": "store", "OPEN_CLIP_PREFIX": "templates", "class_prompts": "templates",
    "load_template_set": "templates", "template_set_names": "templates",
    "extract_text_features": "texts",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
