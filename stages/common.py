"""What every stage does the same way: the --params option and the backbone argument, picking a
device, and turning the mistakes a user can make into one line on stderr instead of a traceback."""

from __future__ import annotations

import errno
import functools
import os
import sys

import typer

from pipeline.common import InputError
from stages.params import ParamsError

PARAMS_OPTION = typer.Option("params.yaml", "--params", help="The params file to read.")
BACKBONE_ARGUMENT = typer.Argument(None, help="The backbone, a key of clip.backbones. Default: "
                                   "the first of clip.adapter_backbones.")


TARGET_OPTION = typer.Option(None, "--target", help="The target, a key of data.targets. Default: "
                             "the only one (name it where there are several).")


def say(stage: str):
    """`say(line)`: print `<stage>: line` (warnings to stderr)."""
    def print_line(line: str) -> None:
        warning = line.startswith("warning") or "WARNING" in line
        print(f"{stage}: {line}", file=sys.stderr if warning else sys.stdout)
    return print_line


def chosen_backbone(clip, name: str | None) -> str:
    """`name` (default: the first of clip.adapter_backbones) if it is a key of clip.backbones,
    else a `ParamsError` naming the backbones there are."""
    name = clip.adapter_backbones[0] if name is None else name
    if name not in clip.backbones:
        raise ParamsError(f"clip.backbones has no backbone {name!r} (backbones: "
                          f"{', '.join(clip.backbones)})")
    return name


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
    exit 1; an error with `details` lists them below its line). Anything else is a bug and
    keeps its traceback."""
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
            for line in getattr(error, "details", ()):
                print(f"  {line}", file=sys.stderr)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            from tqdm import tqdm

            tqdm.write(INTERRUPTED, file=sys.stderr)  # on a line of its own, below any bar
            raise typer.Exit(130) from None  # the shell's code for a run ended by SIGINT
        except OSError as error:
            if error.errno not in UNWRITABLE:
                raise  # anything else is a bug and keeps its traceback
            print(unwritable_line(error), file=sys.stderr)
            raise typer.Exit(1) from None
    return run


# A write the disk refused: full, over quota, read-only, forbidden. Outputs are written to a
# temporary name and renamed when whole, so what the run finished stays and nothing half-written
# stands under a final name.
UNWRITABLE = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def unwritable_line(error: OSError) -> str:
    """One line for a refused write: 'error: cannot write <path>: No space left on device (free
    space there, then rerun: ...)'; the path where the error names it (pyarrow's do not)."""
    reason = os.strerror(error.errno)
    if error.errno in (errno.EACCES, errno.EPERM):  # a read may be refused too
        return f"error: {error.filename or 'a file'}: {reason} (fix its permissions, then rerun)"
    where = f" {error.filename}" if error.filename else ""
    place = "there" if error.filename else "on the disk the outputs go to"
    need = {errno.ENOSPC: f"free space {place}", errno.EDQUOT: f"free space {place} within your "
            "quota", errno.EROFS: "write to a writable folder"}[error.errno]
    return (f"error: cannot write{where}: {reason} ({need}, then rerun: what was finished is "
            "kept, and nothing half-written stands under a final name)")


INTERRUPTED = ("interrupted (outputs are renamed into place only when whole): a rerun starts "
               "the command again, keeping what it had finished (extract: its written shards; "
               "describe: the answers it stored; a training stage starts over)")


def error_line(error: Exception) -> str:
    """`error: <the message on one line>`."""
    return f"error: {' '.join(str(error).split())}"
