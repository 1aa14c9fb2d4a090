"""The `fgvc` command: one sub-command per DVC stage, same names as in dvc.yaml and params.yaml.

`dvc repro` calls these; they also run by hand, e.g. `fgvc train_adapter --help`.
"""

from __future__ import annotations

import os
import sys

import typer

from pipeline.common import InputError
from stages import (bench, clip, data, demo, describe, download, evaluate, extract, preset,
                    report, suite, train_adapter, train_qformer, zeroshot)
from stages.common import error_line, one_line_errors
from stages.params import ParamsError

app = typer.Typer(
    help="fgvc: fine-grained classifiers trained partly from text on frozen CLIP. Each command "
         "is one stage of the DVC pipeline (run them all with `dvc repro`); each reads its "
         "section of params.yaml.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

for name, module in [("demo", demo), ("data", data), ("clip", clip), ("describe", describe),
                     ("extract", extract), ("train_qformer", train_qformer),
                     ("train_adapter", train_adapter),
                     ("evaluate", evaluate), ("zeroshot", zeroshot), ("report", report),
                     ("suite", suite),
                     ("download", download), ("preset", preset)]:
    app.command(name)(one_line_errors(module.main))
app.add_typer(bench.app, name="bench")


def main() -> None:
    # Tokenizers must not fork worker threads into our DataLoader workers.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not sys.stderr.isatty():  # logs (CI, nohup) get a progress line every 10 s, not every step
        os.environ.setdefault("TQDM_MININTERVAL", "10")
    try:
        app()
    except InputError as error:  # raised while the options are read, before a command runs:
        print(error_line(error), file=sys.stderr)  # e.g. no dvc.yaml to take default paths from
        sys.exit(error.exit_code)
    except ParamsError as error:  # a default path that params.yaml chooses (--clip)
        for line in str(error).splitlines():
            print(f"error: {line}", file=sys.stderr)
        sys.exit(2)
