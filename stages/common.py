"""What every stage does the same way: the --params option, picking a device, and turning the
mistakes a user can make into one line on stderr instead of a traceback."""

from __future__ import annotations

import functools
import sys

import typer

from pipeline.common import InputError
from stages.params import ParamsError

PARAMS_OPTION = typer.Option("params.yaml", "--params", help="The params file to read.")


def resolve_device(device: str, key: str) -> str:
    """`device` ("auto", "cpu" or "cuda"; from `key`, a params key or an option) as a torch
    device name."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ParamsError(f"{key}: 'cuda', but torch sees no CUDA GPU (set it to auto or cpu)")
    return device


LONG_ON_CPU = 3600.0  # seconds: a job this long on the CPU gets a loud warning before it starts


def warn_if_long_on_cpu(device: str, stage: str, count: int, seconds_each, what: str,
                        fix: str) -> None:
    """Say loudly, before it starts, that a job on the CPU would take hours (`count` x
    `seconds_each()`, a timing on this machine, taken only on the CPU), and what to do instead:
    `device: auto` falls back to the CPU where torch sees no GPU, and a preset-size job there
    takes hours or days."""
    if str(device) != "cpu":
        return
    each = seconds_each()
    total = count * each
    if total < LONG_ON_CPU:
        return
    hours = total / 3600
    span = f"{hours:.1f} hours" if hours < 48 else f"{hours / 24:.1f} days"
    print(f"{stage}: WARNING: running on the CPU, this would take about {span} from scratch ({count:,} "
          f"{what} at {each:.3g} s each, measured here). {fix}", file=sys.stderr)


def one_line_errors(command):
    """Run a command so that what a user can get wrong ends in `error: ...` lines and an exit
    code, never a traceback: invalid params (one line per problem, exit 2) and `InputError`s
    (a missing input, a foreign folder, a download that failed, features of another CLIP:
    exit 1). Anything else is a bug and keeps its traceback."""
    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except ParamsError as error:
            for line in str(error).splitlines():
                print(f"error: {line}", file=sys.stderr)
            raise typer.Exit(2) from None
        except InputError as error:
            print(error_line(error), file=sys.stderr)
            raise typer.Exit(error.exit_code) from None
    return run


def error_line(error: Exception) -> str:
    """`error: <the message on one line>`."""
    return f"error: {' '.join(str(error).split())}"
