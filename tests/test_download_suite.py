"""`fgvc download pets flowers102 aircraft food101 cars` (issue 22): each set's files served by a
local HTTP server as small archives with the members the real archives have (the trees of
test_dataset_formats.py, packed under the archives' own folder names), downloaded through a cut,
unpacked into the layout its reader reads, and read back; a wrong checksum is one error; Stanford
Cars is a manual step that names every file and checks what the user placed."""

import hashlib
import io
import tarfile
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline import download as dl
from pipeline.common import InputError
from stages.cli import app
from test_dataset_formats import (aircraft_tree, cars_tree, flowers_tree, food_tree, pets_tree,
                                  read)
from test_download import serve, server  # noqa: F401 (a fixture)

runner = CliRunner()


def packed(folder: Path, prefix: str, extra: dict[str, bytes] | None = None) -> bytes:
    """A .tar.gz of every file under `folder`, named `<prefix>/<path under folder>` (as the real
    archives name their members), plus `extra` members."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            tar.add(path, f"{prefix}/{path.relative_to(folder).as_posix()}")
        for name, content in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def pets_files(src: Path) -> dict[str, bytes]:
    tree = pets_tree(src / "oxford_pets")
    return {"images.tar.gz": packed(tree / "images", "images"),
            "annotations.tar.gz": packed(tree / "annotations", "annotations",
                                         {"annotations/trimaps/Abyssinian_1.png": b"png",
                                          "annotations/README": b"readme"})}


def flowers_files(src: Path) -> dict[str, bytes]:
    tree = flowers_tree(src / "oxford_flowers")
    return {"102flowers.tgz": packed(tree / "jpg", "jpg"),
            "imagelabels.mat": (tree / "imagelabels.mat").read_bytes(),
            "setid.mat": (tree / "setid.mat").read_bytes()}


def aircraft_files(src: Path) -> dict[str, bytes]:
    tree = aircraft_tree(src / "fgvc-aircraft-2013b")
    return {"fgvc-aircraft-2013b.tar.gz": packed(tree, "fgvc-aircraft-2013b", {
        "fgvc-aircraft-2013b/README.html": b"<html>", "fgvc-aircraft-2013b/evaluation.m": b"%"})}


def food_files(src: Path) -> dict[str, bytes]:
    tree = food_tree(src / "food-101")
    return {"food-101.tar.gz": packed(tree, "food-101", {"food-101/README.txt": b"readme",
                                                         "food-101/license_agreement.txt": b""})}


def cars_files(src: Path) -> dict[str, bytes]:
    tree = cars_tree(src / "stanford_cars")
    return {"cars_train.tgz": packed(tree / "cars_train", "cars_train"),
            "cars_test.tgz": packed(tree / "cars_test", "cars_test"),
            "car_devkit.tgz": packed(tree / "devkit", "devkit", {"devkit/README.txt": b"readme"}),
            "cars_test_annos_withlabels.mat":
                (tree / "cars_test_annos_withlabels.mat").read_bytes()}


SETS = {  # dataset: (the files its archives hold, what the data root holds once done)
    "pets": (pets_files, ["oxford_pets/annotations/README", "oxford_pets/annotations/test.txt",
                          "oxford_pets/annotations/trainval.txt"]),
    "flowers102": (flowers_files, ["oxford_flowers/imagelabels.mat", "oxford_flowers/setid.mat"]),
    "aircraft": (aircraft_files, ["fgvc-aircraft-2013b/data/variants.txt"]),
    "food101": (food_files, ["food-101/meta/classes.txt", "food-101/meta/train.txt"]),
}


def index_of(format: str, root: Path, path: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    target = read(format, root, path)
    return target.images, target.classes


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("dataset", SETS)
def test_each_set_resumes_after_a_cut_and_unpacks_into_its_readers_layout(
        dataset, server, tmp_path, monkeypatch):
    make, kept = SETS[dataset]
    files = make(tmp_path / "src")
    assert sorted(files) == sorted(s.filename for s in dl.dataset_sources(dataset))
    serve(server, monkeypatch, files)
    for name, content in files.items():  # every transfer cut half way the first time
        server.cut_after[name] = len(content) // 2
    logged = []
    dl.fetch_dataset(dataset, tmp_path / "data", server.url, log=logged.append, wait=0)

    for name, content in files.items():
        assert [r for f, r in server.requests if f == name] == [None,
                                                                f"bytes={len(content) // 2}-"]
    format, path, _ = dl.TARGETS[dataset]
    root = tmp_path / "data"
    images, classes = index_of(format, root, path)
    expected_images, expected_classes = index_of(format, tmp_path / "src", path)
    pd.testing.assert_frame_equal(images, expected_images)  # as the reader reads the tree
    pd.testing.assert_frame_equal(classes, expected_classes)
    on_disk = files_under(root)
    assert set(kept) <= set(on_disk)
    assert all(f"{path}/{p}" in on_disk for p in images["path"])
    assert [p for p in on_disk if not p.startswith(path + "/")] == []  # archives removed
    assert not any(p.endswith((".html", ".m", "README.txt", "license_agreement.txt"))
                   for p in on_disk)  # what no reader reads is left in the archive
    train, test = (images["split"] == "train").sum(), (images["split"] == "test").sum()
    assert logged[-1] == (f"{dataset}: {root / path} reads as data.target.format {format}: "
                          f"{train} train / {test} test images, {len(classes)} classes "
                          f"(published: {dl.TARGETS[dataset][2][0]:,} / "
                          f"{dl.TARGETS[dataset][2][1]:,}, {dl.TARGETS[dataset][2][2]}: "
                          "not the whole set?)")


def test_a_wrong_checksum_is_one_error_and_nothing_is_unpacked(server, tmp_path, monkeypatch):
    files = flowers_files(tmp_path / "src")
    serve(server, monkeypatch, files)
    source = dl.SOURCES["setid.mat"]
    monkeypatch.setitem(dl.SOURCES, "setid.mat", source.__class__(
        **{**source.__dict__, "checksum": "sha256:" + "0" * 64}))
    data = tmp_path / "data"
    result = runner.invoke(app, ["download", "flowers102", "--to", str(data),
                                 "--mirror", server.url])
    assert result.exit_code == 1
    error = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "Traceback" not in result.output
    assert "setid.mat" in error[0] and "0" * 64 in error[0]
    assert hashlib.sha256(files["setid.mat"]).hexdigest() in error[0]
    assert (data / "oxford_flowers" / "setid.mat.bad").read_bytes() == files["setid.mat"]
    assert not (data / "oxford_flowers" / "setid.mat").exists()


# --- Stanford Cars: a manual step -----------------------------------------------------------

def check_cars_table(monkeypatch, files: dict[str, bytes]) -> None:
    """The table's sizes and sha256 made to match the test's small files."""
    for name, content in files.items():
        source = dl.SOURCES[name]
        monkeypatch.setitem(dl.SOURCES, name, source.__class__(**{
            **source.__dict__, "size": len(content),
            "checksum": "sha256:" + hashlib.sha256(content).hexdigest()}))


def test_cars_names_every_file_to_place_then_checks_and_unpacks_them(tmp_path, monkeypatch):
    files = cars_files(tmp_path / "src")
    check_cars_table(monkeypatch, files)
    data = tmp_path / "data"
    result = runner.invoke(app, ["download", "cars", "--to", str(data)])
    assert result.exit_code == 1
    assert "pytorch/vision/issues/7545" in result.output
    for name in files:  # each file, missing, where it goes, and where what it unpacks to goes
        line = next(line for line in result.output.splitlines() if f"{data / name}  or" in line)
        assert line.strip().startswith("[missing]")
    assert f"{data / 'stanford_cars' / 'cars_train'}/: the 8,144 train images" in result.output
    assert str(data / "stanford_cars" / "devkit" / "cars_test_annos_withlabels.mat") in \
        result.output
    assert "error: cars: 4 files to place by hand" in result.output

    data.mkdir()
    for name, content in files.items():  # the user places the original files
        (data / name).write_bytes(content)
    result = runner.invoke(app, ["download", "cars", "--to", str(data)])
    assert result.exit_code == 0, result.output
    images, classes = index_of("stanford_cars", data, "stanford_cars")
    expected = index_of("stanford_cars", tmp_path / "src", "stanford_cars")
    pd.testing.assert_frame_equal(images, expected[0])
    pd.testing.assert_frame_equal(classes, expected[1])
    assert "stanford_cars reads as data.target.format stanford_cars: 4 train / 3 test images, " \
           "3 classes" in result.output
    assert sorted(p.name for p in (data / "stanford_cars").iterdir()) == [
        "cars_test", "cars_test_annos_withlabels.mat", "cars_train", "devkit"]
    # the user's archives are kept (this run did not download them); the .mat moved into place
    assert sorted(p.name for p in data.iterdir()) == [
        "car_devkit.tgz", "cars_test.tgz", "cars_train.tgz", "stanford_cars"]


def test_cars_takes_an_unpacked_copy_as_it_is_and_says_what_is_missing(tmp_path, monkeypatch):
    data = tmp_path / "data"
    cars_tree(data / "stanford_cars", test_labels="devkit/cars_test_annos_withlabels.mat")
    (data / "stanford_cars" / "cars_test").rename(data / "cars_test_elsewhere")
    result = runner.invoke(app, ["download", "cars", "--to", str(data)])
    assert result.exit_code == 1
    states = {name: next(line.split("]")[0].strip(" [") for line in result.output.splitlines()
                         if f"{data / name}  or" in line)
              for name in ("cars_train.tgz", "cars_test.tgz", "car_devkit.tgz",
                           "cars_test_annos_withlabels.mat")}
    assert states == {"cars_train.tgz": "in place", "cars_test.tgz": "missing",
                      "car_devkit.tgz": "in place", "cars_test_annos_withlabels.mat": "in place"}
    assert f"error: cars: 1 file to place by hand under {data} (cars_test.tgz)" in result.output

    (data / "cars_test_elsewhere").rename(data / "stanford_cars" / "cars_test")
    result = runner.invoke(app, ["download", "cars", "--to", str(data)])
    assert result.exit_code == 0, result.output
    assert result.output.count("already there, skipped") == 4
    assert "3 test images" in result.output


def test_a_placed_cars_file_that_is_not_the_published_one_is_refused(tmp_path, monkeypatch):
    files = cars_files(tmp_path / "src")
    check_cars_table(monkeypatch, files)
    data = tmp_path / "data"
    data.mkdir()
    (data / "cars_test_annos_withlabels.mat").write_bytes(b"not the labels")
    with pytest.raises(InputError, match="cars_test_annos_withlabels.mat from .* is not the "
                                         "expected file: expected sha256"):
        dl.fetch_source(dl.SOURCES["cars_test_annos_withlabels.mat"], data, log=lambda _: None)
    assert not (data / "stanford_cars").exists()
    assert (data / "cars_test_annos_withlabels.mat.bad").read_bytes() == b"not the labels"


@pytest.mark.parametrize("name, fetch", [("oxford-pets", "pets coco karpathy cbd"),
                                         ("stanford-cars", "cars coco karpathy"),
                                         ("cub-paper", "all")])
def test_a_missing_data_root_names_the_download_of_the_presets_set(tmp_path, name, fetch):
    import yaml

    from conftest import REPO

    out = tmp_path / "params.yaml"
    result = runner.invoke(app, ["preset", name, "--out", str(out),
                                 "--presets", str(REPO / "presets")])
    assert result.exit_code == 0, result.output
    params = yaml.safe_load(out.read_text())
    params["data"]["root"] = str(tmp_path / "nowhere")
    out.write_text(yaml.safe_dump(params))
    result = runner.invoke(app, ["data", "--params", str(out), "--out", str(tmp_path / "i")])
    assert result.exit_code == 1
    assert f"`fgvc download {fetch} --to {tmp_path / 'nowhere'}`" in result.output


def test_the_cars_instructions_in_data_md_are_what_the_command_prints(tmp_path, monkeypatch):
    from conftest import REPO

    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["download", "cars", "--to", "data"])
    doc = (REPO / "docs" / "data.md").read_text()
    start = doc.index("```\ncars: a manual step") + 4
    assert doc[start:doc.index("```", start)].strip() == result.output.strip()


def test_an_archive_its_reader_refuses_is_one_error_naming_the_missing_file(
        server, tmp_path, monkeypatch):
    tree = aircraft_tree(tmp_path / "src" / "fgvc-aircraft-2013b")
    (tree / "data" / "images_variant_test.txt").unlink()  # a broken mirror's archive
    serve(server, monkeypatch, {"fgvc-aircraft-2013b.tar.gz": packed(tree, "fgvc-aircraft-2013b")})
    data = tmp_path / "data"
    result = runner.invoke(app, ["download", "aircraft", "--to", str(data),
                                 "--mirror", server.url])
    assert result.exit_code == 1 and "Traceback" not in result.output
    error = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error) == 1
    missing = data / "fgvc-aircraft-2013b" / "data" / "images_variant_test.txt"
    assert error[0].startswith("error: aircraft: what is in place does not read as format "
                               f"fgvc_aircraft: missing file {missing}")
    assert f"Delete {data / 'fgvc-aircraft-2013b'} and run the download again" in error[0]
