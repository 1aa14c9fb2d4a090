"""Speed measurements (`fgvc bench ...`, never a DVC stage, never imported by one): image
extraction against its own bounds, the adapter grid batched against one head at a time, and the
Q-Former's training loop against the loop it replaced.
Every figure is a ratio to a baseline measured in the same run.
"""

from pipeline.bench.adapter import AdapterBench, bench_adapter
from pipeline.bench.extraction import bench_extraction, format_figures, image_files
from pipeline.bench.qformer import QFormerBench, bench_qformer

__all__ = ["AdapterBench", "QFormerBench", "bench_adapter", "bench_extraction", "bench_qformer",
           "format_figures", "image_files"]
