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
