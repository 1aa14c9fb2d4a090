"""Speed measurements (`fgvc bench ...`, never a DVC stage, never imported by one): image
extraction against its own bounds, the adapter grid batched against one head at a time, the
few-shot methods at CUB's size against one probe fit, the Q-Former's training loop against
the loop it replaced, and reading a COCO-size feature set with its checksums verified against
the same read unverified. Every figure is a ratio to a baseline measured in the same run. Names load on first use.
"""

from pipeline.config import lazy_exports

_EXPORTS = {"AdapterBench": "adapter", "bench_adapter": "adapter", "bench_grid": "adapter",
            "bench_extraction": "extraction", "format_figures": "extraction",
            "image_files": "extraction", "CUB_SIZE": "few_shot", "FewShotBench": "few_shot",
            "bench_few_shot": "few_shot", "QFormerBench": "qformer", "bench_qformer": "qformer",
            "COCO_CAPTIONS": "read", "ReadBench": "read", "bench_read": "read"}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
