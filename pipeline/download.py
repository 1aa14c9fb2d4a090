"""Fetching the real datasets from their official sources, laid out as the readers expect.

`SOURCES` is the one table of what is fetched: one `Source` a file (address, size, checksum,
what to keep of it and where). `fetch_source` brings one into place under a root folder:

- a resumable download (HTTP Range on `<file>.part`; a server that ignores Range is read from
  the start again), hashed while it streams, renamed from `.part` only once the checksum
  matches; a file that does not match is moved aside to `<file>.bad`, never extracted;
- an extraction into `<target>.extracting/` beside the target, renamed into place at the end,
  so that a killed run never leaves a folder a reader would take for complete;
- a target already there is skipped, so running it again costs nothing.

Google Drive wants a browser, so Reed et al.'s captions are a manual step: `ManualStepRequired`
says where to get the file and where to put it; once it is there the same code extracts it.
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
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import requests
import urllib3
from tqdm import tqdm

from pipeline.common import InputError

__all__ = ["DATASETS", "SOURCES", "ManualStepRequired", "Source", "dataset_sources", "download",
           "extract", "fetch_source", "place", "verify"]

CHUNK = 1 << 20
TIMEOUT = (15, 60)  # seconds: to connect, and between two reads


@dataclass(frozen=True)
class Source:
    """One file to fetch. `extract` pairs a member of the archive with its path inside
    `target`: a member ending in `/` is a folder (everything under it), `**/` in front lets it
    sit under any folders, "" as the path is the target itself. No `extract`: the file itself
    is the target."""

    dataset: str                  # cub | reed | coco | karpathy | cbd
    url: str                      # the official address
    filename: str                 # saved as <root>/<filename>; a mirror serves <mirror>/<filename>
    size: int | None              # bytes; None: not published
    checksum: str | None          # "md5:<hex>" or "sha256:<hex>"; None: unknown (size checked)
    target: str                   # relative to the root: there once done
    extract: tuple[tuple[str, str], ...] = ()
    manual: bool = False          # the host needs a browser: the user fetches the file


REED_DRIVE = ("https://drive.google.com/file/d/0B0ywwgffWnLLZW9uVHNjb2JmNlE/view"
              "?resourcekey=0-8y2UVmBHAlG26HafWYNoFQ")

SOURCES: dict[str, Source] = {source.filename: source for source in (
    # md5 as in torchvision-style loaders (e.g. ContinualAI/avalanche cub200.py); the size is
    # the one TFDS records (url_checksums/caltech_birds2011.txt). attributes.txt sits beside
    # CUB_200_2011/ in the archive: it goes into CUB_200_2011/attributes/ with the rest.
    Source("cub", "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz",
           "CUB_200_2011.tgz", 1_150_585_339, "md5:97eceeb196236b17998738112f37df78",
           "CUB_200_2011",
           (("CUB_200_2011/", ""), ("attributes.txt", "attributes/attributes.txt"))),
    # On Google Drive, linked from github.com/reedscot/cvpr2016 ("birds"). Its size and checksum
    # are published nowhere: the archive is checked by holding a text_c10/ folder. Only that
    # folder is kept (one <class>/<image>.txt of 10 captions per CUB image).
    Source("reed", REED_DRIVE, "cvpr2016_cub.tar.gz", None, None, "text_c10",
           (("**/text_c10/", ""),), manual=True),
    # COCO 2014: sizes and sha256 as TFDS records them (url_checksums/coco2014.txt).
    Source("coco", "http://images.cocodataset.org/zips/train2014.zip", "train2014.zip",
           13_510_573_713,
           "sha256:ede4087e640bddba550e090eae701092534b554b42b05ac33f0300b984b31775",
           "coco/train2014", (("train2014/", ""),)),
    Source("coco", "http://images.cocodataset.org/zips/val2014.zip", "val2014.zip",
           6_645_013_297,
           "sha256:fe9be816052049c34717e077d9e34aa60814a55679f804cd043e3cbee3b9fde0",
           "coco/val2014", (("val2014/", ""),)),
    # Only the caption files are kept (instances and keypoints are 0.8 GB nothing reads).
    Source("coco", "http://images.cocodataset.org/annotations/annotations_trainval2014.zip",
           "annotations_trainval2014.zip", 252_872_794,
           "sha256:031296bbc80c45a1d1f76bf9a90ead27e94e99ec629208449507a4917a3bf009",
           "coco/annotations", (("annotations/captions_train2014.json", "captions_train2014.json"),
                                ("annotations/captions_val2014.json", "captions_val2014.json"))),
    # Karpathy's splits (TFDS url_checksums/coco_captions.txt); only dataset_coco.json is kept.
    Source("karpathy", "https://cs.stanford.edu/people/karpathy/deepimagesent/caption_datasets.zip",
           "caption_datasets.zip", 36_745_453,
           "sha256:4cfd70132527b80933105e5829dc9034eaab9573482e2e680abbab6130244817",
           "coco/dataset_coco.json", (("**/dataset_coco.json", ""),)),
    # CBD's published descriptors, pinned to the repository's commit d1a3d89 (2023-12-28).
    Source("cbd", "https://raw.githubusercontent.com/sachit-menon/classify_by_description_release/"
                  "d1a3d8920af89bd0d6a692ed3afeb277df46e082/descriptors/descriptors_cub.json",
           "descriptors_cub.json", 49_292,
           "sha256:983966040fd8747d89ee9b0f311eeab3b5f4b318e062dd0529c9bb57e2282597",
           "cbd/descriptors_cub.json"),
)}

DATASETS = ("cub", "reed", "coco", "karpathy", "cbd")


def dataset_sources(dataset: str, sources: dict[str, Source] | None = None) -> list[Source]:
    """The files of one dataset, in table order."""
    chosen = [s for s in (SOURCES if sources is None else sources).values() if s.dataset == dataset]
    if not chosen:
        raise InputError(f"unknown dataset {dataset!r} (known: {', '.join(DATASETS)})")
    return chosen


class ManualStepRequired(InputError):
    """A file the user must fetch by hand; `instructions` says how, over several lines."""

    def __init__(self, source: Source, root: Path):
        archive, target = Path(root) / source.filename, Path(root) / source.target
        super().__init__(f"{source.dataset}: download {source.filename} by hand from "
                         f"{source.url} and put it at {archive}, then run this again")
        self.instructions = "\n".join([
            f"{source.dataset}: {source.filename} is on a host that needs a browser "
            "(Google Drive), so it is a manual step:",
            f"  1. open {source.url}",
            f"     and download {source.filename}",
            f"  2. put it at {archive}",
            f"  3. run the download again: it checks the archive and extracts it to {target}",
            f"  (or extract it yourself: tar -xzf {source.filename}, and move the {target.name}/ "
            f"folder it holds to {target})"])


# --- one source ---------------------------------------------------------------------------------

def fetch_source(source: Source, root: Path, mirror: str | None = None, *,
                 log: Callable[[str], None] = print, retries: int = 3, wait: float = 2.0) -> None:
    """Bring `source` into place under `root`: download (unless there), verify, extract."""
    root = Path(root)
    target = root / source.target
    if target.exists():
        log(f"{source.dataset}: {target} is already there, skipped")
        return
    url = f"{mirror.rstrip('/')}/{source.filename}" if mirror else source.url
    if not source.extract:
        download(url, target, source.size, source.checksum, log=log, retries=retries, wait=wait)
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
