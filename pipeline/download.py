"""Fetching the real datasets from their official sources, laid out as the readers expect.

`pipeline.sources.SOURCES` is the one table of what is fetched: one `Source` a file (address,
size, checksum, what to keep of it and where). `fetch_source` brings one into place under a root
folder:

- a resumable download (HTTP Range on `<file>.part`; a server that ignores Range is read from
  the start again), hashed while it streams, renamed from `.part` only once the checksum
  matches; a file that does not match is moved aside to `<file>.bad`, never extracted;
- an extraction into `<target>.extracting/` beside the target, renamed into place at the end,
  so that a killed run never leaves a folder a reader would take for complete;
- a target already there is skipped, so running it again costs nothing.

Google Drive wants a browser, so Reed et al.'s captions are a manual step, and so is Stanford
Cars, whose official site is gone: `ManualStepRequired` says where to get each file and where to
put it; once it is there the same code checks and extracts it. `fetch_dataset` brings every file
of one dataset into place, then reads a fine-grained set with its `data.target.format` reader
(`TARGETS`), so a layout the readers would refuse shows at download time.
"""

from __future__ import annotations

import errno
import hashlib
import re
import shutil
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import requests
import urllib3
from tqdm import tqdm

from pipeline.common import InputError
from pipeline.sources import (DATASETS, KNOWN, SOURCES, SUITE, TARGETS, Source,
                              dataset_sources)

__all__ = ["DATASETS", "KNOWN", "SOURCES", "SUITE", "TARGETS", "ManualStepRequired", "Source",
           "check_target", "dataset_sources", "download", "extract", "fetch_dataset",
           "fetch_source", "manual_instructions", "place", "verify"]

CHUNK = 1 << 20
TIMEOUT = (15, 60)  # seconds: to connect, and between two reads


class ManualStepRequired(InputError):
    """A file the user must fetch by hand; `instructions` says how, over several lines."""

    def __init__(self, source: Source, root: Path):
        archive, target = Path(root) / source.filename, Path(root) / source.target
        super().__init__(f"{source.dataset}: download {source.filename} by hand from "
                         f"{source.url} and put it at {archive}, then run this again")
        self.source = source
        self.instructions = "\n".join([
            f"{source.dataset}: {source.filename} is a manual step: {source.why_manual}.",
            f"  1. open {source.url}",
            f"     and download {source.filename}",
            f"  2. put it at {archive}",
            f"  3. run the download again: it checks the archive and extracts it to {target}",
            f"  (or extract it yourself: tar -xzf {source.filename}, and move the {target.name}/ "
            f"folder it holds to {target})"])

    @classmethod
    def of_dataset(cls, dataset: str, root: Path, missing: list[Source]) -> ManualStepRequired:
        """One step for the files of a dataset still missing, its instructions a table of
        all its files (`manual_instructions`)."""
        step = cls(missing[0], root)
        files = "file" if len(missing) == 1 else "files"
        step.args = (f"{dataset}: {len(missing)} {files} to place by hand under {root} "
                     f"({', '.join(source.filename for source in missing)}): see above",)
        step.instructions = manual_instructions(dataset, root, missing)
        return step


def manual_instructions(dataset: str, root: Path, missing: list[Source]) -> str:
    """What to place where for a dataset of several manual files (Stanford Cars): each file
    of the table, whether it is in place, and where it or what it unpacks to goes."""
    root = Path(root)
    sources = dataset_sources(dataset)
    lines = [f"{dataset}: a manual step: {sources[0].why_manual}. Put each file still "
             f"missing at the first path shown (it is checked against its published size and "
             "sha256, then unpacked or moved into place), or what it unpacks to at the second:"]
    for source in sources:
        state = "missing" if source in missing else "in place"
        placed = " (or " + ", ".join(str(root / also) for also in source.also) + ")" \
            if source.also else ""
        unpacked = (f"{source.target}/: {source.holds}" if source.extract
                    else f"{source.target}{placed}: {source.holds}")
        lines.append(f"  [{state}] {root / source.filename}  or  {root / unpacked}")
    lines.append(f"then run the download of {dataset} again: it checks the files, unpacks the "
                 "archives and reads the layout as the data stage will")
    return "\n".join(lines)


# --- one source ---------------------------------------------------------------------------------

def fetch_source(source: Source, root: Path, mirror: str | None = None, *,
                 log: Callable[[str], None] = print, retries: int = 3, wait: float = 2.0) -> None:
    """Bring `source` into place under `root`: download (unless there), verify, extract."""
    root = Path(root)
    target = root / source.target
    there = next((path for path in (target, *(root / also for also in source.also))
                  if path.exists()), None)
    if there is not None:
        log(f"{source.dataset}: {there} is already there, skipped")
        return
    url = f"{mirror.rstrip('/')}/{source.filename}" if mirror else source.url
    if not source.extract:
        placed = root / source.filename
        if source.manual and placed.is_file() and placed != target:  # the user's copy
            log(f"{source.dataset}: checking {placed}, already there")
            verify(placed, source.size, source.checksum, url,
                   _hash_file(placed, source.checksum))
            target.parent.mkdir(parents=True, exist_ok=True)
            placed.replace(target)
        elif source.manual and not mirror:
            raise ManualStepRequired(source, root)
        else:
            download(url, target, source.size, source.checksum, log=log, retries=retries,
                     wait=wait)
        log(f"{source.dataset}: {target} done")
        return
    archive = root / source.filename
    fetched = not archive.exists()
    if fetched:
        if source.manual and not mirror:
            raise ManualStepRequired(source, root)
        download(url, archive, source.size, source.checksum, log=log, retries=retries, wait=wait)
    else:  # placed by the user, or left by a run killed while extracting: check it all the same
        log(f"{source.dataset}: checking {archive}, already there")
        verify(archive, source.size, source.checksum, url, _hash_file(archive, source.checksum))
    extract(archive, target, source.extract, log=log)
    if fetched:
        archive.unlink()
        log(f"{source.dataset}: {target} done ({archive.name} removed)")
    else:
        log(f"{source.dataset}: {target} done ({archive} kept: this run did not download it; "
            "delete it when you like)")


def fetch_dataset(dataset: str, root: Path, mirror: str | None = None, *,
                  log: Callable[[str], None] = print, **retry) -> None:
    """Every file of `dataset` into place under `root`, then (a fine-grained set) its layout
    read by its reader. Files that are a manual step and missing: `ManualStepRequired`, once
    the rest is in place, with the instructions for all of them."""
    missing = []
    for source in dataset_sources(dataset):
        try:
            fetch_source(source, root, mirror, log=log, **retry)
        except ManualStepRequired as step:
            missing.append(step)
    if missing and len(dataset_sources(dataset)) == 1:
        raise missing[0]
    if missing:  # one table for the dataset's files, what is there and what is not
        raise ManualStepRequired.of_dataset(dataset, root, [step.source for step in missing])
    if dataset in TARGETS:
        try:
            log(check_target(dataset, root))
        except InputError as error:  # a DatasetLayoutError: the reader's one line
            format, path, _ = TARGETS[dataset]
            raise InputError(f"{dataset}: what is in place does not read as format {format}: "
                             f"{error}. Delete {Path(root) / path} and run the download again "
                             "(or check the mirror, or the copy you placed)") from None


def check_target(dataset: str, root: Path) -> str:
    """Read a downloaded fine-grained set as the data stage will (its preset's format and
    path): one line of counts, beside the published ones where they differ."""
    from pipeline.data.formats import TARGET_FORMATS  # pandas, scipy: only when checking

    format, path, published = TARGETS[dataset]
    entry = TARGET_FORMATS.entry(format)
    target = entry.value(Path(root), entry.settings(format=format, path=path))
    splits = target.images["split"].value_counts()
    counts = (int(splits.get("train", 0)), int(splits.get("test", 0)), len(target.classes))
    line = (f"{dataset}: {Path(root) / path} reads as data.target.format {format}: "
            f"{counts[0]:,} train / {counts[1]:,} test images, {counts[2]} classes")
    if counts != published:
        line += (f" (published: {published[0]:,} / {published[1]:,}, {published[2]}: "
                 "not the whole set?)")
    return line


# --- downloading --------------------------------------------------------------------------------

class _Retry(Exception):
    """Network trouble worth another try."""


def download(url: str, path: Path, size: int | None, checksum: str | None, *,
             log: Callable[[str], None] = print, retries: int = 3, wait: float = 2.0) -> None:
    """Fetch `url` to `path` through `<path>.part` (resumed where a previous try stopped), and
    rename it only once `checksum` (else `size`) matches."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    host = urlsplit(url).hostname or url
    for attempt in range(retries + 1):
        try:
            digest = _get(url, part, size, checksum)
            break
        except _Retry as error:
            if attempt == retries:
                tries = f"{retries + 1} {'try' if retries == 0 else 'tries'}"
                raise InputError(f"cannot download {path.name} from {host} after {tries} "
                                 f"({error}): check the network and run again (it resumes), or "
                                 "fetch from a mirror (--mirror URL)") from None
            pause = wait * 2 ** attempt
            log(f"{path.name}: {error}; trying again in {pause:.0f} s")
            time.sleep(pause)
        except OSError as error:
            if error.errno == errno.ENOSPC:
                raise InputError(f"no space left for {part} on its disk: free some, then run "
                                 "again (it resumes)") from None
            raise
    verify(part, size, checksum, url, digest, final=path)
    part.replace(path)


def _get(url: str, part: Path, size: int | None, checksum: str | None):
    """One try: append to `part` what the server has past it; the digest of the whole file."""
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:
        offset = 0
    if offset and offset == size:  # a run killed between the last byte and the rename
        return _hash_file(part, checksum)
    headers = {"Accept-Encoding": "identity"} | ({"Range": f"bytes={offset}-"} if offset else {})
    try:
        with requests.get(url, headers=headers, stream=True, timeout=TIMEOUT) as response:
            if offset and response.status_code == 416:  # nothing past what we have
                return _hash_file(part, checksum)
            _check_status(response, url)
            if offset and (response.status_code != 206 or not response.headers.get(
                    "Content-Range", "").startswith(f"bytes {offset}-")):
                offset = 0  # the server ignored Range: start over
            length = response.headers.get("Content-Length")
            expected = offset + int(length) if length else size
            digest = _hash_file(part, checksum, limit=offset)
            with open(part, "r+b" if offset else "wb") as f, tqdm(
                    total=expected, initial=offset, unit="B", unit_scale=True,
                    unit_divisor=1024, desc=part.name.removesuffix(".part")) as bar:
                f.seek(offset)
                f.truncate()
                for chunk in _arriving(response):
                    f.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
                received = f.tell()
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
            urllib3.exceptions.HTTPError) as error:
        raise _Retry(_reason(error)) from None
    if expected is not None and received < expected:
        raise _Retry(f"the connection closed after {received} of {expected} bytes")
    return digest


def _arriving(response: requests.Response) -> Iterator[bytes]:
    """The body's bytes as they arrive, undecoded (the checksum is of the file as served).
    `read1` hands over every block received before a cut; `iter_content` would drop the block
    it was filling."""
    raw = response.raw
    if not hasattr(raw, "read1"):  # urllib3 1.x
        yield from raw.stream(CHUNK, decode_content=False)
        return
    while chunk := raw.read1(CHUNK, decode_content=False):
        yield chunk


def _check_status(response: requests.Response, url: str) -> None:
    if response.status_code == 429 or response.status_code >= 500:
        raise _Retry(f"HTTP {response.status_code} {response.reason}")
    if response.status_code >= 400:
        raise InputError(f"{urlsplit(url).hostname} answered HTTP {response.status_code} "
                         f"{response.reason} for {url}: the file moved or the mirror lacks it")


def _reason(error: Exception) -> str:
    """'connection failed: [Errno 111] Connection refused', not urllib3's paragraph."""
    if isinstance(error, (requests.Timeout, urllib3.exceptions.TimeoutError)):
        kind = "timed out"
    elif isinstance(error, (requests.exceptions.ChunkedEncodingError,
                            urllib3.exceptions.ProtocolError)):
        kind = "the connection broke"
    else:
        kind = "connection failed"
    detail = re.search(r"\[Errno -?\d+\][^'\")(]*", str(error))
    return f"{kind}: {detail.group(0).strip()}" if detail else kind


def _short(error: Exception) -> str:
    return " ".join(str(error).split())[:200]


def _algorithm(checksum: str | None) -> str:
    return checksum.split(":", 1)[0] if checksum else "sha256"


def _hash_file(path: Path, checksum: str | None, limit: int | None = None):
    """The digest (of `checksum`'s kind, sha256 if none) of `path`'s first `limit` bytes."""
    digest = hashlib.new(_algorithm(checksum))
    if limit == 0 or not Path(path).exists():
        return digest
    left = limit
    with open(path, "rb") as f:
        while left is None or left > 0:
            block = f.read(CHUNK if left is None else min(CHUNK, left))
            if not block:
                break
            digest.update(block)
            left = None if left is None else left - len(block)
    return digest


def verify(path: Path, size: int | None, checksum: str | None, url: str, digest,
           final: Path | None = None) -> None:
    """Refuse a file whose checksum (or, with none known, size) differs: it is moved aside to
    `<final name>.bad`, kept for a look, never extracted."""
    final = Path(final or path)
    actual_size = Path(path).stat().st_size
    if checksum:
        algorithm, expected = checksum.split(":", 1)
        actual = digest.hexdigest()
        what = f"expected {algorithm} {expected}, got {actual}"
    else:  # no published checksum: the size is all there is to check
        expected, actual = size, actual_size
        what = f"expected {size} bytes, got {actual_size}"
    if expected is None or actual == expected:
        return
    bad = final.with_name(final.name + ".bad")
    Path(path).replace(bad)
    raise InputError(f"{final.name} from {url} is not the expected file: {what} "
                     f"({actual_size} bytes). Kept as {bad}, not extracted: delete it and run "
                     "again, or check the mirror")


# --- extracting ---------------------------------------------------------------------------------

def place(member: str, layout: tuple[tuple[str, str], ...]) -> tuple[str, str] | None:
    """The layout pattern an archive member matches and where it goes inside the target ("" for
    the target itself), or None: the member is left out."""
    parts = PurePosixPath(member).parts
    if ".." in parts or PurePosixPath(member).is_absolute():
        raise InputError(f"archive member {member!r} points outside its folder: refused")
    for pattern, inside in layout:
        anywhere = pattern.startswith("**/")
        bare = pattern.removeprefix("**/")
        for start in range(len(parts) if anywhere else 1):
            tail = "/".join(parts[start:])
            if bare.endswith("/") and tail.startswith(bare):
                return pattern, "/".join(p for p in (inside, tail[len(bare):]) if p)
            if tail == bare:
                return pattern, inside
    return None


def extract(archive: Path, target: Path, layout: tuple[tuple[str, str], ...], *,
            log: Callable[[str], None] = print) -> None:
    """Unpack the members `layout` names (.tar.gz/.tgz or .zip) into `target`, through a
    temporary folder beside it, renamed into place once every member pattern was found."""
    target = Path(target)
    staging = target.with_name(target.name + ".extracting")
    if staging.exists():  # what a killed run left
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    found: set[str] = set()
    try:
        with tqdm(unit=" files", desc=f"extracting {target.name}") as bar:
            if zipfile.is_zipfile(archive):
                _extract_zip(archive, staging, target.name, layout, found, bar)
            else:
                _extract_tar(archive, staging, target.name, layout, found, bar)
        missing = [pattern for pattern, _ in layout if pattern not in found]
        if missing:
            raise InputError(f"{archive} holds no {', '.join(missing)}: not the expected "
                             "archive? Delete it and run again")
        (staging / target.name).replace(target)
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EACCES, errno.EROFS):
            raise InputError(f"cannot unpack {archive} into {target.parent} ({_short(error)}): "
                             "free some space or fix the permissions, then run again (the "
                             "archive is kept)") from None
        raise InputError(f"{archive} cannot be unpacked ({_short(error)}): delete it and run "
                         "again") from None
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as error:
        raise InputError(f"{archive} cannot be unpacked ({_short(error)}): delete it and run "
                         "again") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"extracted {archive.name} -> {target}")


def _record(member: str, layout, found: set[str]) -> str | None:
    """Where `member` goes inside the target, noting the pattern it matched in `found`."""
    match = place(member, layout)
    if match is None:
        return None
    found.add(match[0])
    return match[1]


def _extract_tar(archive, staging: Path, name: str, layout, found, bar) -> None:
    if not hasattr(tarfile, "data_filter"):  # added in 3.10.12 / 3.11.4
        raise InputError(f"Python {sys.version.split()[0]} cannot unpack {archive} safely "
                         "(tarfile has no extraction filters): use Python >= 3.10.12 or "
                         ">= 3.11.4, or unpack it yourself")
    with tarfile.open(archive) as tar:
        for member in tar:
            inside = _record(member.name, layout, found) if member.isfile() else None
            if inside is None:
                continue  # folders are made as files need them; links are not kept
            # the "data" filter refuses anything that would land outside the staging folder
            tar.extract(member.replace(name="/".join(p for p in (name, inside) if p)),
                        staging, filter="data")
            bar.update()


def _extract_zip(archive, staging: Path, name: str, layout, found, bar) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            inside = None if info.is_dir() else _record(info.filename, layout, found)
            if inside is None:
                continue
            destination = staging / name / inside if inside else staging / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(destination, "wb") as out:
                shutil.copyfileobj(src, out, CHUNK)
            bar.update()
