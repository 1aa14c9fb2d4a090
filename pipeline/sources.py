"""What `fgvc download` fetches, in one table: `SOURCES` holds one `Source` a file (its
official address, its size and checksum as a named loader publishes them, what to keep of it and
where under the data root); `TARGETS` the fine-grained sets' readers, to check a download with.
`pipeline.download` does the fetching.

Checksums and sizes are the ones torchvision's and TensorFlow Datasets' loaders publish, or (CBD's
files) computed from the files at a pinned commit; each entry names its source, none is made up.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.common import InputError

__all__ = ["DATASETS", "KNOWN", "SOURCES", "SUITE", "TARGETS", "Source", "dataset_sources"]


@dataclass(frozen=True)
class Source:
    """One file to fetch. `extract` pairs a member of the archive with its path inside
    `target`: a member ending in `/` is a folder (everything under it), `**/` in front lets it
    sit under any folders, "" as the path is the target itself. No `extract`: the file itself
    is the target."""

    dataset: str                  # one of KNOWN
    url: str                      # the official address
    filename: str                 # saved as <root>/<filename>; a mirror serves <mirror>/<filename>
    size: int | None              # bytes; None: not published
    checksum: str | None          # "md5:<hex>" or "sha256:<hex>"; None: unknown (size checked)
    target: str                   # relative to the root: there once done
    extract: tuple[tuple[str, str], ...] = ()
    manual: bool = False          # the user fetches the file (why: `why_manual`)
    why_manual: str = ""          # one sentence for the instructions
    also: tuple[str, ...] = ()    # other paths (relative to the root) that count as the target
    holds: str = ""               # what the target is, for the instructions


REED_DRIVE = ("https://drive.google.com/file/d/0B0ywwgffWnLLZW9uVHNjb2JmNlE/view"
              "?resourcekey=0-8y2UVmBHAlG26HafWYNoFQ")

CBD_RELEASE = ("https://raw.githubusercontent.com/sachit-menon/classify_by_description_release/"
               "d1a3d8920af89bd0d6a692ed3afeb277df46e082")
FLOWERS = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102"
CARS = "http://ai.stanford.edu/~jkrause/car196"  # dead; TFDS's record of where the files were
CARS_GONE = ("Stanford Cars' official site (ai.stanford.edu/~jkrause/cars) is gone; "
             "https://github.com/pytorch/vision/issues/7545 lists copies")

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
           (("**/text_c10/", ""),), manual=True,
           why_manual="it is on a host that needs a browser (Google Drive)",
           holds="Reed et al.'s captions, one <class>/<image>.txt per CUB image"),
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
    # CBD's published descriptors, pinned to the repository's commit d1a3d89 (2023-12-28); the
    # sha256 and sizes computed from the files at that commit. Of the sets here CBD covers CUB,
    # Oxford-IIIT Pet and Food-101 (not Flowers-102, FGVC-Aircraft or Stanford Cars).
    *(Source("cbd", f"{CBD_RELEASE}/descriptors/descriptors_{name}.json",
             f"descriptors_{name}.json", size, f"sha256:{sha256}", f"cbd/descriptors_{name}.json")
      for name, size, sha256 in (
          ("cub", 49_292, "983966040fd8747d89ee9b0f311eeab3b5f4b318e062dd0529c9bb57e2282597"),
          ("pets", 8_441, "3e9b003047b66210920c699678a84f481e4f2a196e40020b0cd0dd595bc441c4"),
          ("food101", 21_885,
           "b7393ceb850bd4f0d4a06ef3a30bb81cb41fd3a43e2a0adccf9e95a903a65d91"))),
    # --- the fine-grained suite (issue 22), each into the folder its preset's data.target.path
    # names, laid out as its pipeline/data/formats/ reader reads it. Addresses as torchvision's
    # loaders fetch them; sizes and sha256 as TFDS records them (url_checksums/*.txt); the md5s
    # torchvision checks are noted beside.
    # Oxford-IIIT Pet (TFDS url_checksums/oxford_iiit_pet.txt; torchvision OxfordIIITPet md5
    # 5c4f3ee8e5d25df40f4fd59a7f44e54c and 95a8c909bbe2e81eed6a22bccdf3f68f). Both archives
    # are kept whole: images/ also holds 3 .mat files, annotations/ the trimaps and xmls.
    Source("pets", "https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz",
           "images.tar.gz", 791_918_971,
           "sha256:67195c5e1c01f1ab5f9b6a5d22b8c27a580d896ece458917e61d459337fa318d",
           "oxford_pets/images", (("images/", ""),)),
    Source("pets", "https://www.robots.ox.ac.uk/~vgg/data/pets/data/annotations.tar.gz",
           "annotations.tar.gz", 19_173_078,
           "sha256:52425fb6de5c424942b7626b428656fcbd798db970a937df61750c0f1d358e91",
           "oxford_pets/annotations",
           (("annotations/trainval.txt", "trainval.txt"), ("annotations/test.txt", "test.txt"),
            ("annotations/", ""))),
    # Flowers-102 (TFDS url_checksums/oxford_flowers102.txt; torchvision Flowers102 md5
    # 52808999861908f626f3c1f4e79d11fa, e0620be6f572b9609742df49c70aed4d,
    # a5357ecc9cb78c4bef273ce3793fc85c); the two .mat files are not archives.
    Source("flowers102", f"{FLOWERS}/102flowers.tgz", "102flowers.tgz", 344_862_509,
           "sha256:2d01ecc807db462958cfe3d92f57a8c252b4abd240eb955770201e45f783b246",
           "oxford_flowers/jpg", (("jpg/", ""),)),
    Source("flowers102", f"{FLOWERS}/imagelabels.mat", "imagelabels.mat", 502,
           "sha256:4903e94206bac23bf772aadf06451916df56b58fc483a62db32a97b82656651d",
           "oxford_flowers/imagelabels.mat"),
    Source("flowers102", f"{FLOWERS}/setid.mat", "setid.mat", 14_989,
           "sha256:46b8678f91fd95d3c8f4feab80d271a6c834a1dd896fe29fd3e6ad9ce5c8dccd",
           "oxford_flowers/setid.mat"),
    # FGVC-Aircraft 2013b (TFDS url_checksums/fgvc.txt; torchvision FGVCAircraft checks no
    # checksum). Only data/ is kept (the rest: a README and Matlab evaluation code).
    Source("aircraft", "https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/archives/"
                       "fgvc-aircraft-2013b.tar.gz", "fgvc-aircraft-2013b.tar.gz", 2_770_575_360,
           "sha256:d5f68b1b81d6d7831eb9d5c5517074176b5dfbce6bcb43dc14ed1c66a87b8d75",
           "fgvc-aircraft-2013b", (("fgvc-aircraft-2013b/data/variants.txt", "data/variants.txt"),
                                   ("fgvc-aircraft-2013b/data/", "data"))),
    # Food-101 (TFDS url_checksums/food101.txt; torchvision Food101 md5
    # 85eeb15f3717b99a5da872d97d918f87); both name it over http, as here. Its images/ and meta/
    # are kept (the rest: its README and licence).
    Source("food101", "http://data.vision.ee.ethz.ch/cvl/food-101.tar.gz", "food-101.tar.gz",
           4_996_278_331,
           "sha256:d97d15e438b7f4498f96086a4f7e2fa42a32f2712e87d3295441b2b6314053a4",
           "food-101", (("food-101/images/", "images"), ("food-101/meta/", "meta"))),
    # Stanford Cars: the official site is gone (torchvision's StanfordCars no longer downloads
    # it, pytorch/vision#7545), so the user places the files. Sizes and sha256 as TFDS records
    # the original files (url_checksums/cars196.txt): copies of those archives are checked and
    # unpacked; a copy of the unpacked layout is taken as it is and read by the reader.
    *(Source("cars", f"{CARS}/{filename}", filename, size, f"sha256:{sha256}",
             f"stanford_cars/{target}", layout, manual=True, why_manual=CARS_GONE, also=also,
             holds=holds)
      for filename, size, sha256, target, layout, also, holds in (
          ("cars_train.tgz", 979_269_282,
           "512b227b30e2f0a8aab9e09485786ab4479582073a144998da74d64b801fd288", "cars_train",
           (("cars_train/", ""),), (), "the 8,144 train images, 00001.jpg ..."),
          ("cars_test.tgz", 977_350_468,
           "bffea656d6f425cba3c91c6d83336e4c5f86c6cffd8975b0f375d3a10da8e243", "cars_test",
           (("cars_test/", ""),), (), "the 8,041 test images, 00001.jpg ..."),
          ("car_devkit.tgz", 330_960,
           "b97deb463af7d58b6bfaa18b2a4de9829f0f79e8ce663dfa9261bf7810e9accd", "devkit",
           (("devkit/cars_meta.mat", "cars_meta.mat"),
            ("devkit/cars_train_annos.mat", "cars_train_annos.mat"), ("devkit/", "")), (),
           "the devkit: cars_meta.mat, cars_train_annos.mat, ..."),
          ("cars_test_annos_withlabels.mat", 185_758,
           "790f75be8ea34eeded134cc559332baf23e30e91367e9ddca97d26ed9b895f05",
           "cars_test_annos_withlabels.mat", (),
           ("stanford_cars/devkit/cars_test_annos_withlabels.mat",),
           "the test labels (devkit/cars_test_annos.mat has none)"))),
)}

DATASETS = ("cub", "reed", "coco", "karpathy", "cbd")  # `all`: the paper preset's data
SUITE = ("pets", "flowers102", "aircraft", "food101", "cars")  # issue 22's sets, one by one
KNOWN = DATASETS + SUITE

# dataset -> (its data.target.format, data.target.path as its preset names it, the published
# train / test / class counts): read once in place, as the data stage will read it
TARGETS = {"pets": ("oxford_pets", "oxford_pets", (3_680, 3_669, 37)),
           "flowers102": ("flowers102", "oxford_flowers", (2_040, 6_149, 102)),
           "aircraft": ("fgvc_aircraft", "fgvc-aircraft-2013b", (6_667, 3_333, 100)),
           "food101": ("food101", "food-101", (75_750, 25_250, 101)),
           "cars": ("stanford_cars", "stanford_cars", (8_144, 8_041, 196))}


def dataset_sources(dataset: str, sources: dict[str, Source] | None = None) -> list[Source]:
    """The files of one dataset, in table order."""
    chosen = [s for s in (SOURCES if sources is None else sources).values() if s.dataset == dataset]
    if not chosen:
        raise InputError(f"unknown dataset {dataset!r} (known: {', '.join(KNOWN)})")
    return chosen
