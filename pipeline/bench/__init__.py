"""Speed measurements (`fgvc bench ...`, never a DVC stage, never imported by one): image
extraction against its own bounds, and the adapter grid batched against one head at a time.
Every figure is a ratio to a baseline measured in the same run.
"""

from pipeline.bench.adapter import AdapterBench, bench_adapter
from pipeline.bench.extraction import bench_extraction, format_figures, image_files

__all__ = ["AdapterBench", "bench_adapter", "bench_extraction", "format_figures", "image_files"]
