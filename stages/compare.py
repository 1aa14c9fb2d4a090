"""`fgvc report --compare A B`: two experiments' Table 1 and params, read through DVC (a helper
of the report command, not a stage: DVC's API stays out of the library)."""

from __future__ import annotations

import sys
from pathlib import Path

WORKSPACE = "workspace"


def compare_revs(rev_a: str, rev_b: str, table_path: Path, out_file: Path | None) -> None:
    """Table 1 and the params of two experiments, read through DVC at each rev."""
    from pipeline.common import InputError, write_text
    from pipeline.report import (compare_markdown, compare_table1, dataset_of, mismatches,
                                 params_diff, text_kind_of)

    (table_a, params_a), (table_b, params_b) = (load_experiment(rev, table_path)
                                                for rev in (rev_a, rev_b))
    try:
        cells = compare_table1(table_a, table_b)
    except ValueError as error:
        raise InputError(f"{error} ({table_path})") from None
    datasets = (dataset_of(params_a), dataset_of(params_b))
    for line in mismatches(cells, datasets):
        print(f"report: WARNING: {line}", file=sys.stderr)
    markdown = compare_markdown(cells, params_diff(params_a, params_b), rev_a, rev_b, datasets,
                                (text_kind_of(params_a), text_kind_of(params_b)))
    print(markdown, end="")
    if out_file is not None:
        write_text(out_file, markdown)


def load_experiment(rev: str, table_path: Path):
    """An experiment's Table 1 and params, read through DVC at `rev` (WORKSPACE: the files here):
    dvc.api resolves git revs, branches, tags and DVC experiment names alike, and reads a
    DVC-tracked table1.csv from the cache (or the remote) by the hash that rev's dvc.lock names."""
    import dvc.api
    import pandas as pd
    from dvc.exceptions import DvcException
    from dvc.scm import RevError

    from pipeline.common import InputError

    dvc_rev = None if rev == WORKSPACE else rev
    try:
        with dvc.api.open(str(table_path), rev=dvc_rev) as handle:
            table = pd.read_csv(handle)
        params = dvc.api.params_show(rev=dvc_rev)
    except RevError:
        raise InputError(f"'{rev}' is neither a git rev, branch or tag nor a DVC experiment "
                         f"(see `git log --all`, `dvc exp show`), nor '{WORKSPACE}'") from None
    except (DvcException, FileNotFoundError) as error:
        raise InputError(f"{rev}: cannot read {table_path} ({type(error).__name__}: {error}). "
                         "Did the report stage run there? If its outputs are only on a DVC "
                         "remote, `dvc pull` them first.") from None
    return table, params
