"""Stage `demo@<name>`: draw the offline demo world `data.demo.<name>` into <out>/<name>.

The world is laid out as the real datasets are (CUB_200_2011/, text_c10/, coco/), so the `data`
stage reads it, with the real readers, when `data.root` points at it. With real data,
`data.demo: {}` and this stage does not exist.
"""

from __future__ import annotations

from pathlib import Path

import typer

from stages.common import PARAMS_OPTION
from stages.layout import artifact_option
from stages.params import ParamsError, load_params


def main(name: str = typer.Argument(..., help="The world to draw, a key of data.demo."),
         out: Path = artifact_option("demo", help="Folder of the demo worlds: draws <out>/<name>."),
         params: Path = PARAMS_OPTION) -> None:
    """Draw a demo world (small CUB-like birds with Reed-like captions, COCO-like scenes)."""
    from pipeline.data import generate_demo_world

    worlds = load_params(params).data.demo
    if name not in worlds:
        raise ParamsError(f"data.demo has no world {name!r} "
                          f"(worlds: {', '.join(worlds) or 'none'})")
    generate_demo_world(out / name, worlds[name])
    print(f"demo: world {name!r} drawn in {out / name}")
