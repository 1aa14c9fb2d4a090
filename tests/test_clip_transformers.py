"""The `transformers` CLIP library (pipeline/clip/loaders/huggingface.py) on tiny random CLIP and
SigLIP models saved the way a user's local copy looks (each part's `save_pretrained`), offline:
its encoders against transformers' own, its preprocessing against the HF image processors, its
tokens, the round trip through a resolved folder, the fingerprint checks and its refusals."""

import importlib.util
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from PIL import Image
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

from pipeline.clip.fingerprint import FingerprintMismatch, check_same_clip, fingerprint_of
from pipeline.clip.loaders import CLIP_LIBRARIES
from pipeline.clip.loaders.huggingface import TransformersClip
from pipeline.clip.loading import create_clip, load_clip, save_clip
from pipeline.common import InputError

# conftest sets HF_HUB_OFFLINE=1: nothing here reaches the hub

REPO = Path(__file__).resolve().parents[1]
TEXTS = ["A photo of a small bird, with a short beak!", "a bird",
         " ".join(["a photo of a bird"] * 30)]  # the last one longer than any context: truncated
SIGLIP_WORDS = ["<pad>", "</s>", "<unk>", "a", "photo", "of", "small", "bird", "with", "short",
                "beak"]
SIGLIP_CONTEXT = 16


def clip_tokenizer() -> transformers.CLIPTokenizer:
    """OpenAI CLIP's BPE tokenizer, rebuilt offline from open_clip's bundled vocabulary
    (SimpleTokenizer: `encoder` token -> id, `bpe_ranks` the merges in order), with HF's names
    for the start and end tokens."""
    from open_clip.tokenizer import SimpleTokenizer

    simple = SimpleTokenizer()
    names = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
    vocab = {names.get(token, token): i for token, i in simple.encoder.items()}
    merges = [pair for pair, _ in sorted(simple.bpe_ranks.items(), key=lambda item: item[1])]
    return transformers.CLIPTokenizer(vocab=vocab, merges=merges)


def siglip_tokenizer() -> transformers.PreTrainedTokenizerFast:
    """A small word-level tokenizer shaped like SigLIP's: lowercase, an end token appended, a
    real pad id (0)."""
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(SIGLIP_WORDS)},
                                           unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>",
                                                             special_tokens=[("</s>", 1)])
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>",
                                                eos_token="</s>", unk_token="<unk>")


def tiny(width: int) -> dict:
    return dict(hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2,
                num_attention_heads=2)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """{family: a local model folder}: tiny random CLIP (text width 32, vision 48, D 16) and
    SigLIP (text width 24, vision and D 32), each with its tokenizer and image processor."""
    root = tmp_path_factory.mktemp("hf")
    torch.manual_seed(0)
    clip = transformers.CLIPModel(transformers.CLIPConfig(
        text_config=dict(tiny(32), max_position_embeddings=77),
        vision_config=dict(tiny(48), image_size=32, patch_size=8), projection_dim=16))
    siglip = transformers.SiglipModel(transformers.SiglipConfig(
        text_config=dict(tiny(24), vocab_size=len(SIGLIP_WORDS), projection_size=32,
                         max_position_embeddings=SIGLIP_CONTEXT, pad_token_id=0, bos_token_id=None,
                         eos_token_id=1),
        vision_config=dict(tiny(32), image_size=32, patch_size=8)))
    parts = {
        "clip": (clip, clip_tokenizer(), transformers.CLIPImageProcessor(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})),
        "siglip": (siglip, siglip_tokenizer(), transformers.SiglipImageProcessor(
            size={"height": 32, "width": 32})),
    }
    for family, files in parts.items():
        for part in files:
            part.save_pretrained(root / family)
    return {family: root / family for family in parts}


@pytest.fixture(scope="module")
def references(folders) -> dict:
    """transformers' own models, loaded from the same folders."""
    return {"clip": transformers.CLIPModel.from_pretrained(folders["clip"]).eval(),
            "siglip": transformers.SiglipModel.from_pretrained(folders["siglip"]).eval()}


def create(folder: Path) -> TransformersClip:
    return create_clip(str(folder), "main", library="transformers")


def image(width: int, height: int, seed: int) -> Image.Image:
    """Noise: the worst case for resampling differences."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def hf_pixels(folder: Path, picture: Image.Image, backend: str) -> torch.Tensor:
    processor = transformers.AutoImageProcessor.from_pretrained(folder, backend=backend)
    return processor(images=picture, return_tensors="pt")["pixel_values"][0]  # (3, H, W)


# --- the model and its card ----------------------------------------------------------------------

@pytest.mark.parametrize("family", ["clip", "siglip"])
@torch.inference_mode()
def test_create_encodes_like_transformers(folders, references, family):
    clip, hf = create(folders[family]), references[family]
    assert isinstance(clip, TransformersClip)
    pixels = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    expected = hf.get_image_features(pixel_values=pixels).pooler_output  # (3, D)
    torch.testing.assert_close(clip.model.encode_image(pixels), expected)
    # the extraction's CUDA path makes model and pixels channels-last: the same numbers
    channels_last = clip.model.to(memory_format=torch.channels_last)
    torch.testing.assert_close(channels_last.encode_image(
        pixels.contiguous(memory_format=torch.channels_last)), expected)
    ids, _ = clip.tokenize(TEXTS)
    torch.testing.assert_close(clip.model.encode_text(ids),
                               hf.get_text_features(input_ids=ids).pooler_output)
    dim = {"clip": 16, "siglip": 32}[family]
    assert clip.embed_dim == dim and clip.model.encode_text(ids).shape == (len(TEXTS), dim)
    assert {k: clip.card[k] for k in ("library", "model_name", "pretrained")} == {
        "library": "transformers", "model_name": str(folders[family]), "pretrained": "main"}
    assert clip.card["config"]["model_type"] == family
    assert clip.card["config"]["dtype"] == "float32"
    assert "_name_or_path" not in clip.card["config"]  # no machine's path in the card
    mean, std = (([0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711])
                 if family == "clip" else ([0.5] * 3, [0.5] * 3))
    assert clip.card["preprocess"] == {
        "size": [32, 32], "mode": "RGB", "mean": mean, "std": std, "interpolation": "bicubic",
        "resize_mode": {"clip": "shortest", "siglip": "squash"}[family], "fill_color": 0}


@torch.inference_mode()
def test_clip_text_needs_no_attention_mask(folders, references):
    """CLIP's text tower is causal and pools at the first end token: padding after it changes
    nothing, so the ids alone give what HF gives with the mask."""
    clip, hf = create(folders["clip"]), references["clip"]
    batch = clip.tokenizer(TEXTS, padding="max_length", max_length=77, truncation=True,
                           return_tensors="pt")
    torch.testing.assert_close(clip.model.encode_text(batch["input_ids"]), hf.get_text_features(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).pooler_output)


def test_model_pickles(folders):
    """The torch module is made on first use, yet pickles by name like a top-level class."""
    clip = create(folders["clip"])
    copy = pickle.loads(pickle.dumps(clip.model))
    ids, _ = clip.tokenize(TEXTS)
    with torch.inference_mode():
        assert torch.equal(copy.encode_text(ids), clip.model.encode_text(ids))


# --- preprocessing -------------------------------------------------------------------------------

# (width, height): CLIP's resized long side exceeds the 32 px crop by 9, 16, 54, 9 and 0 pixels
AGREEING_SIZES = [(61, 47), (64, 48), (100, 37), (47, 61), (32, 32)]


def one_level(std: list[float]) -> float:
    """One 8-bit level in normalised units, for the channel with the smallest std."""
    return 1 / 255 / min(std) * (1 + 1e-4)


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_preprocess_matches_hf_processor(folders, family):
    """Against HF's "pil" backend (Pillow's resize, as ours): the same floats. Against its
    default "torchvision" backend (torchvision's antialiased resize of the uint8 tensor):
    within one 8-bit level."""
    clip = create(folders[family])
    level = one_level(clip.card["preprocess"]["std"])
    for seed, (width, height) in enumerate(AGREEING_SIZES):
        picture = image(width, height, seed)
        ours = clip.preprocess(picture)  # (3, 32, 32)
        assert ours.shape == (3, 32, 32)
        torch.testing.assert_close(ours, hf_pixels(folders[family], picture, "pil"),
                                   rtol=0, atol=1e-6)
        torch.testing.assert_close(ours, hf_pixels(folders[family], picture, "torchvision"),
                                   rtol=0, atol=level)


def test_clip_center_crop_rounds_like_torchvision(folders):
    """33 x 90 resizes to 32 x 87: 55 rows to crop. HF floors (27 off the top), torchvision's
    CenterCrop (open_clip's, OpenAI's original) rounds 27.5 to 28: one row further down."""
    clip, picture = create(folders["clip"]), image(33, 90, seed=7)
    ours, hf = clip.preprocess(picture), hf_pixels(folders["clip"], picture, "pil")
    assert not torch.allclose(ours, hf, atol=0.1)
    torch.testing.assert_close(ours[:, :-1], hf[:, 1:], rtol=0, atol=1e-6)


# --- tokens and per-token states -----------------------------------------------------------------

def test_clip_tokens_equal_open_clips(folders):
    """The HF tokenizer rebuilt from open_clip's vocabulary tokenizes as open_clip does (long
    texts cut to the context with the end token kept), and lengths count start .. end."""
    from open_clip.tokenizer import SimpleTokenizer

    clip = create(folders["clip"])
    ids, lengths = clip.tokenize(TEXTS)
    reference = SimpleTokenizer()(TEXTS, context_length=77)  # (N, 77), 0 pads
    expected_lengths = (reference == 49407).int().argmax(dim=1) + 1
    assert lengths.tolist() == expected_lengths.tolist() == [14, 4, 77]
    for row, length in enumerate(lengths.tolist()):
        assert ids[row, :length].tolist() == reference[row, :length].tolist()


@pytest.mark.parametrize("family", ["clip", "siglip"])
@torch.inference_mode()
def test_tokenize_and_states(folders, references, family):
    clip, hf = create(folders[family]), references[family]
    context = {"clip": 77, "siglip": SIGLIP_CONTEXT}[family]
    ids, lengths = clip.tokenize(TEXTS)
    batch = clip.tokenizer(TEXTS, padding="max_length", max_length=context, truncation=True,
                           return_tensors="pt")
    assert ids.dtype == lengths.dtype == torch.long and ids.shape == (len(TEXTS), context)
    assert torch.equal(ids, batch["input_ids"])
    assert lengths.tolist() == batch["attention_mask"].sum(dim=1).tolist()
    if family == "siglip":  # pads with the real pad id, after the end token
        assert ids[1].tolist() == [3, 7, 1] + [0] * (context - 3) and lengths[1] == 3
    features, states = clip.encode_text_states(ids)  # (N, D), (N, L, W)
    assert clip.token_width == {"clip": 32, "siglip": 24}[family]
    assert states.shape == (len(TEXTS), context, clip.token_width)
    torch.testing.assert_close(features, clip.model.encode_text(ids))
    # the states are the final layer's output after the text tower's final layer norm
    out = hf.text_model(input_ids=ids, output_hidden_states=True)
    torch.testing.assert_close(states, out.last_hidden_state)
    torch.testing.assert_close(states, hf.text_model.final_layer_norm(out.hidden_states[-1]))
    assert not torch.allclose(states, out.hidden_states[-1], atol=1e-3)
    empty_ids, empty_lengths = clip.tokenize([])
    assert empty_ids.shape == (0, context) and empty_lengths.shape == (0,)


# --- the resolved folder and fingerprints --------------------------------------------------------

@pytest.mark.parametrize("family", ["clip", "siglip"])
@torch.inference_mode()
def test_save_load_round_trip(folders, tmp_path, family):
    clip = create(folders[family])
    card = save_clip(clip, tmp_path / "resolved")
    assert (tmp_path / "resolved" / "tokenizer" / "tokenizer_config.json").is_file()
    loaded = load_clip(tmp_path / "resolved")
    assert isinstance(loaded, TransformersClip)
    assert loaded.card == card and loaded.fingerprint == fingerprint_of(card) == clip.fingerprint
    ids, lengths = clip.tokenize(TEXTS)
    loaded_ids, loaded_lengths = loaded.tokenize(TEXTS)
    assert torch.equal(ids, loaded_ids) and torch.equal(lengths, loaded_lengths)
    pixels = torch.stack([clip.preprocess(image(40, 50, seed=3))])
    assert torch.equal(loaded.preprocess(image(40, 50, seed=3)), pixels[0])
    # the weights bit for bit; the encodings within float rounding (the loaded tensors sit
    # elsewhere in memory, and CPU kernels may round differently there: 1e-7 seen)
    saved, rebuilt = clip.model.state_dict(), loaded.model.state_dict()
    assert saved.keys() == rebuilt.keys()
    assert all(torch.equal(saved[k], rebuilt[k]) for k in saved)
    torch.testing.assert_close(loaded.model.encode_image(pixels), clip.model.encode_image(pixels))
    torch.testing.assert_close(loaded.model.encode_text(ids), clip.model.encode_text(ids))
    for mine, theirs in zip(loaded.encode_text_states(ids), clip.encode_text_states(ids)):
        torch.testing.assert_close(mine, theirs)
    # the same model resolved again: the same weights' bytes, the same fingerprint
    assert save_clip(create(folders[family]), tmp_path / "again")["weights_sha256"] == \
        card["weights_sha256"]

    tampered = shutil.copytree(tmp_path / "resolved", tmp_path / "tampered")
    weights = bytearray((tampered / "model.safetensors").read_bytes())
    weights[-1] ^= 1
    (tampered / "model.safetensors").write_bytes(bytes(weights))
    with pytest.raises(InputError, match="does not match the hash in its card"):
        load_clip(tampered)
    shutil.rmtree(tmp_path / "resolved" / "tokenizer")
    with pytest.raises(InputError, match="no readable tokenizer.*rerun the `clip` stage"):
        load_clip(tmp_path / "resolved")


def test_fingerprints_refuse_other_clips(folders, tmp_path):
    """Features of an open_clip model (or of the other HF model, or other preprocessing) do not
    pass where the transformers CLIP is in use: the checks open_clip's features get."""
    torch.manual_seed(0)
    open_clip_card = save_clip(create_clip("fgvc-demo-tiny", None), tmp_path / "open_clip")
    hf_card = save_clip(create(folders["clip"]), tmp_path / "clip")
    siglip_card = save_clip(create(folders["siglip"]), tmp_path / "siglip")
    in_use = fingerprint_of(hf_card)
    check_same_clip(in_use, fingerprint_of(hf_card), "features", "re-extract them")
    with pytest.raises(FingerprintMismatch, match=r"made with CLIP fgvc-demo-tiny \(trained here"
                       r".*differs in: embed_dim, model_name, preprocess, pretrained, "
                       r"weights_sha256\); re-extract them"):
        check_same_clip(in_use, fingerprint_of(open_clip_card), "features", "re-extract them")
    with pytest.raises(FingerprintMismatch, match="differs in: embed_dim, model_name, preprocess"):
        check_same_clip(in_use, fingerprint_of(siglip_card), "features", "re-extract them")
    other_crop = dict(in_use, preprocess=dict(in_use["preprocess"], resize_mode="squash"))
    with pytest.raises(FingerprintMismatch, match=r"differs in: preprocess\)"):
        check_same_clip(in_use, other_crop, "features", "re-extract them")
    with pytest.raises(FingerprintMismatch, match="records no CLIP fingerprint"):
        check_same_clip(in_use, None, "features", "re-extract them")


# --- refusals ------------------------------------------------------------------------------------

def test_refusals(folders, tmp_path):
    with pytest.raises(InputError, match="library transformers needs pretrained: a revision "
                       "such as main; null means: train an open_clip model here"):
        create_clip(str(folders["clip"]), None, library="transformers")
    transformers.BertConfig(**tiny(32)).save_pretrained(tmp_path / "bert")
    with pytest.raises(InputError, match=r"is a 'bert' model; library transformers loads CLIP "
                       r"and SigLIP models \(model_type clip or siglip"):
        create(tmp_path / "bert")
    with pytest.raises(InputError, match="no folder ./no/such/folder: library transformers "
                       "takes a hub id"):
        create_clip("./no/such/folder", "main", library="transformers")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="has no config.json"):
        create(tmp_path / "empty")
    with pytest.raises(InputError, match=r"could not fetch the config of fgvc-tests/no-such-clip "
                       r"\(revision main\) from the Hugging Face hub: .* To run offline, fetch "
                       r"the model once where there is a network \(hf download fgvc-tests/"
                       r"no-such-clip --revision main.*HF_HUB_OFFLINE=1; or set the backbone's "
                       r"model \(clip.backbones\) to a local folder"):
        create_clip("fgvc-tests/no-such-clip", "main", library="transformers")


def test_refuses_a_crop_open_clip_cannot_make(folders, tmp_path):
    """A processor that resizes the shortest edge to 36 and crops 32 (ImageNet-style) is not
    open_clip's `shortest` mode: refused, not silently preprocessed otherwise."""
    folder = shutil.copytree(folders["clip"], tmp_path / "clip")
    transformers.CLIPImageProcessor(size={"shortest_edge": 36},
                                    crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    with pytest.raises(InputError, match="resizes the shortest edge to 36 and crops 32x32"):
        create(folder)


def test_sentencepiece_tokenizer_without_the_package(folders, tmp_path):
    """Hub SigLIPs ship SentencePiece tokenizers (SiglipTokenizer): without the package,
    `create` says what to install."""
    if importlib.util.find_spec("sentencepiece") is not None:
        pytest.skip("sentencepiece is installed")
    folder = shutil.copytree(folders["siglip"], tmp_path / "siglip")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink()
    (folder / "tokenizer_config.json").write_text('{"tokenizer_class": "SiglipTokenizer"}')
    (folder / "spiece.model").write_bytes(b"")
    with pytest.raises(InputError, match="tokenizer needs a package that is not installed.*pip "
                       "install sentencepiece"):
        create(folder)


def test_registered_and_import_is_light():
    """Params validation imports every loader: this one's top imports neither torch nor
    transformers, and registers the library."""
    code = ("import sys, pipeline.clip.loaders.huggingface; "
            "assert 'transformers' not in sys.modules and 'torch' not in sys.modules, "
            "sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers')); "
            "from pipeline.clip.loaders import CLIP_LIBRARIES; "
            "assert 'transformers' in CLIP_LIBRARIES.names()")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert result.returncode == 0, result.stderr
    assert "transformers" in CLIP_LIBRARIES.names()
