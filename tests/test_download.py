"""`fgvc download`: resumable, checked downloads and atomic extraction, against a local HTTP
server serving small archives in the real layouts (no network)."""

import dataclasses
import hashlib
import io
import json
import random
import socket
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from pipeline.common import InputError
from pipeline.data import (read_coco_annotations, read_cub_attributes, read_cub_images,
                           read_karpathy_coco, read_reed_captions)
from pipeline import download as dl
from stages.cli import app

runner = CliRunner()


# --- a file server that can be told to cut a transfer short -----------------------------------

class FileServer(ThreadingHTTPServer):
    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []  # (file, Range header)
        self.cut_after: dict[str, int] = {}  # file -> bytes sent before the next request of it dies
        self.ignore_range = False
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        state = self.server
        name, byte_range = self.path.lstrip("/"), self.headers.get("Range")
        state.requests.append((name, byte_range))
        if name not in state.files:
            self.send_error(404)
            return
        body, start = state.files[name], 0
        if byte_range and not state.ignore_range:
            start = int(byte_range.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        cut = state.cut_after.pop(name, None)
        # HTTP/1.0: the connection closes after the handler, so a cut transfer ends short
        self.wfile.write(body[start:] if cut is None else body[start:start + cut])


@pytest.fixture
def server():
    httpd = FileServer()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


# --- small archives in the real layouts -------------------------------------------------------

CLASSES = ["001.Black_footed_Albatross", "002.Laysan_Albatross"]
IMAGES = [(1, 1, "Black_Footed_Albatross_0001_796111", 1),  # (image id, class id, stem, is_train)
          (2, 1, "Black_Footed_Albatross_0002_55", 0), (3, 2, "Laysan_Albatross_0001_545", 1)]


def tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return buffer.getvalue()


def image_path(class_id: int, stem: str) -> str:
    return f"{CLASSES[class_id - 1]}/{stem}.jpg"


def cub_archive() -> bytes:
    noise = random.Random(0).randbytes  # incompressible, so a cut lands mid-archive
    root = "CUB_200_2011/"
    files = {
        root + "images.txt": "".join(f"{i} {image_path(c, s)}\n" for i, c, s, _ in IMAGES),
        root + "classes.txt": "".join(f"{k + 1} {name}\n" for k, name in enumerate(CLASSES)),
        root + "image_class_labels.txt": "".join(f"{i} {c}\n" for i, c, _, _ in IMAGES),
        root + "train_test_split.txt": "".join(f"{i} {t}\n" for i, _, _, t in IMAGES),
        root + "attributes/class_attribute_labels_continuous.txt": "10 0 50\n0 90 5\n",
        "attributes.txt": "1 has_bill_shape::curved\n2 has_wing_color::blue\n3 has_size::small\n",
    }
    files = {name: text.encode() for name, text in files.items()}
    files.update({root + "images/" + image_path(c, s): noise(40_000) for _, c, s, _ in IMAGES})
    return tar_gz(files)


def reed_archive() -> bytes:  # text_c10/ one folder down, beside things nobody reads
    files = {f"cub/text_c10/{image_path(c, s)[:-4]}.txt": f"a bird number {i}\nits wings\n".encode()
             for i, c, s, _ in IMAGES}
    files["cub/word_c10/001.Black_footed_Albatross.t7"] = b"\0" * 100
    return tar_gz(files)


def coco_archives() -> dict[str, bytes]:
    def captions(folder, image_id):
        image = {"id": image_id, "file_name": f"COCO_{folder}_{image_id:012d}.jpg"}
        return json.dumps({"images": [image], "annotations": [
            {"id": 1, "image_id": image_id, "caption": "A cat."}]})
    return {
        "train2014.zip": zipped({"train2014/COCO_train2014_000000000009.jpg": b"jpeg"}),
        "val2014.zip": zipped({"val2014/COCO_val2014_000000000042.jpg": b"jpeg"}),
        "annotations_trainval2014.zip": zipped({
            "annotations/captions_train2014.json": captions("train2014", 9),
            "annotations/captions_val2014.json": captions("val2014", 42),
            "annotations/instances_train2014.json": "{}"}),
        "caption_datasets.zip": zipped({
            "dataset_coco.json": json.dumps({"images": [
                {"split": "train", "cocoid": 9, "filepath": "train2014",
                 "filename": "COCO_train2014_000000000009.jpg",
                 "sentences": [{"raw": "A cat."}]}]}),
            "dataset_flickr8k.json": "{}"}),
    }


def serve(server, monkeypatch, files: dict[str, bytes]) -> None:
    """`files` served, with the table's sizes and checksums of them made to match."""
    server.files.update(files)
    for name, content in files.items():
        source = dl.SOURCES[name]
        kind = source.checksum.split(":")[0] if source.checksum else None
        checksum = f"{kind}:{hashlib.new(kind, content).hexdigest()}" if kind else None
        monkeypatch.setitem(dl.SOURCES, name, dataclasses.replace(
            source, size=len(content) if source.size else None, checksum=checksum))


ALL = sorted(name for name, source in dl.SOURCES.items() if source.dataset in dl.DATASETS)


def serve_everything(server, monkeypatch) -> None:
    """Every file `all` fetches, served."""
    files = {"CUB_200_2011.tgz": cub_archive(), "cvpr2016_cub.tar.gz": reed_archive(),
             "descriptors_cub.json": json.dumps({"Black-footed Albatross": ["a seabird"]}).encode(),
             "descriptors_pets.json": json.dumps({"Abyssinian": ["a cat"]}).encode(),
             "descriptors_food101.json": json.dumps({"apple pie": ["a pie"]}).encode(),
             **coco_archives()}
    assert sorted(files) == ALL
    serve(server, monkeypatch, files)


def cub_source(server, content: bytes, **changes) -> dl.Source:
    server.files["CUB_200_2011.tgz"] = content
    fields = {"url": f"{server.url}/CUB_200_2011.tgz", "size": len(content),
              "checksum": "md5:" + hashlib.md5(content).hexdigest()}
    return dataclasses.replace(dl.SOURCES["CUB_200_2011.tgz"], **(fields | changes))


# --- downloading ----------------------------------------------------------------------------------

def test_a_cut_download_resumes_from_the_partial_file(server, tmp_path):
    content = cub_archive()
    source = cub_source(server, content)
    server.cut_after["CUB_200_2011.tgz"] = cut = len(content) // 2
    path = tmp_path / "CUB_200_2011.tgz"
    dl.download(source.url, path, source.size, source.checksum, wait=0, log=lambda _: None)
    assert server.requests == [("CUB_200_2011.tgz", None), ("CUB_200_2011.tgz", f"bytes={cut}-")]
    assert path.read_bytes() == content
    assert not path.with_name(path.name + ".part").exists()


@pytest.mark.parametrize("ignore_range", [False, True])
def test_a_partial_file_left_by_an_earlier_run_is_resumed(server, tmp_path, ignore_range):
    content = cub_archive()
    source = cub_source(server, content)
    server.ignore_range = ignore_range  # a server without Range support: started over
    path = tmp_path / "CUB_200_2011.tgz"
    path.with_name(path.name + ".part").write_bytes(content[:1000])
    dl.download(source.url, path, source.size, source.checksum, wait=0)
    assert server.requests == [("CUB_200_2011.tgz", "bytes=1000-")]
    assert path.read_bytes() == content


def test_a_wrong_checksum_is_refused_kept_as_bad_and_not_extracted(server, tmp_path):
    content = cub_archive()
    source = cub_source(server, content, checksum="md5:" + "0" * 32)
    with pytest.raises(InputError) as error:
        dl.fetch_source(source, tmp_path, log=lambda _: None)
    message = str(error.value)
    assert "CUB_200_2011.tgz" in message and "0" * 32 in message
    assert hashlib.md5(content).hexdigest() in message
    assert (tmp_path / "CUB_200_2011.tgz.bad").read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CUB_200_2011.tgz.bad"]


def test_an_unreachable_host_is_named_after_the_retries(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(InputError, match=r"from 127\.0\.0\.1 after 2 tries"):
        dl.download(f"http://127.0.0.1:{port}/x.zip", tmp_path / "x.zip", None, None,
                    retries=1, wait=0, log=lambda _: None)


# --- extracting -----------------------------------------------------------------------------------

def test_cub_lands_in_the_layout_the_readers_read(server, tmp_path):
    source = cub_source(server, cub_archive())
    (tmp_path / "CUB_200_2011.extracting").mkdir()  # left by a run killed while unpacking
    dl.fetch_source(source, tmp_path, log=lambda _: None)
    root = tmp_path / "CUB_200_2011"
    images = read_cub_images(root)
    assert images["path"].tolist() == ["images/" + image_path(c, s) for _, c, s, _ in IMAGES]
    assert all((root / p).is_file() for p in images["path"])
    assert read_cub_attributes(root).shape == (2, 4)  # attributes.txt moved into attributes/
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CUB_200_2011"]  # archive removed


def test_an_archive_without_the_expected_folder_leaves_nothing(tmp_path):
    archive = tmp_path / "cvpr2016_cub.tar.gz"
    archive.write_bytes(tar_gz({"birds/readme.txt": b"not the captions"}))
    with pytest.raises(InputError, match="holds no"):
        dl.extract(archive, tmp_path / "text_c10", (("**/text_c10/", ""),), log=lambda _: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cvpr2016_cub.tar.gz"]


def test_members_are_placed_by_the_layout():
    layout = (("**/text_c10/", ""), ("attributes.txt", "attributes/attributes.txt"))
    assert dl.place("./cub/text_c10/a/b.txt", layout) == ("**/text_c10/", "a/b.txt")
    assert dl.place("attributes.txt", layout) == ("attributes.txt", "attributes/attributes.txt")
    assert dl.place("x/attributes.txt", layout) is None
    with pytest.raises(InputError, match="outside"):
        dl.place("text_c10/../../etc/passwd", layout)


# --- the command ----------------------------------------------------------------------------------

def test_reed_is_a_manual_step_then_extracts_what_the_user_placed(tmp_path):
    result = runner.invoke(app, ["download", "reed", "--to", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert "cvpr2016_cub.tar.gz" in result.output and "drive.google.com" in result.output
    assert str(tmp_path / "cvpr2016_cub.tar.gz") in result.output
    assert not (tmp_path / "text_c10").exists()

    (tmp_path / "cvpr2016_cub.tar.gz").write_bytes(reed_archive())
    result = runner.invoke(app, ["download", "reed", "--to", str(tmp_path)])
    assert result.exit_code == 0, result.output
    files = sorted(p.relative_to(tmp_path).as_posix()
                   for p in (tmp_path / "text_c10").rglob("*.txt"))
    assert files == [f"text_c10/{image_path(c, s)[:-4]}.txt" for _, c, s, _ in IMAGES]
    assert (tmp_path / "cvpr2016_cub.tar.gz").exists()  # the user's file is kept


def test_all_from_a_mirror_then_a_second_run_does_nothing(server, tmp_path, monkeypatch):
    serve_everything(server, monkeypatch)
    command = ["download", "all", "--to", str(tmp_path), "--mirror", server.url + "/"]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    assert sorted(name for name, _ in server.requests) == ALL  # not the suite's sets

    images = read_cub_images(tmp_path / "CUB_200_2011")
    assert len(read_reed_captions(tmp_path / "text_c10", images)) == 2 * len(IMAGES)
    coco_images, _ = read_coco_annotations(tmp_path / "coco")
    assert sorted(coco_images["path"]) == ["train2014/COCO_train2014_000000000009.jpg",
                                           "val2014/COCO_val2014_000000000042.jpg"]
    assert all((tmp_path / "coco" / p).is_file() for p in coco_images["path"])
    assert sorted(p.name for p in (tmp_path / "coco" / "annotations").iterdir()) == [
        "captions_train2014.json", "captions_val2014.json"]
    assert len(read_karpathy_coco(tmp_path / "coco" / "dataset_coco.json")[0]) == 1
    assert sorted(p.name for p in (tmp_path / "cbd").iterdir()) == [
        "descriptors_cub.json", "descriptors_food101.json", "descriptors_pets.json"]
    assert json.loads((tmp_path / "cbd" / "descriptors_pets.json").read_text())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CUB_200_2011", "cbd", "coco", "text_c10"]

    before = len(server.requests)
    again = runner.invoke(app, command)
    assert again.exit_code == 0, again.output
    assert len(server.requests) == before
    assert again.output.count("already there, skipped") == len(ALL)
