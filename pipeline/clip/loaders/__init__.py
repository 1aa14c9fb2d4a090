"""CLIP libraries: each module here builds one library's models (`create`: from its hub or a
local copy, `rebuild`: from a resolved folder's card) as a `pipeline.clip.Clip`, so every stage
after `clip` encodes, tokenizes and fingerprints the same way whatever the library.

An entry registers itself with `CLIP_LIBRARIES.register(<library name>)` and is an object with
`create(model, pretrained) -> Clip` and `rebuild(card, folder) -> Clip` (random weights, the
architecture from the card; `load_clip` loads the weights). Modules here import their library
inside those functions: params name these libraries, and are validated before anything loads.
"""

from pipeline.config import Registry

CLIP_LIBRARIES = Registry("CLIP library", "pipeline.clip.loaders")

__all__ = ["CLIP_LIBRARIES"]
