import pytest
import yaml

from stages.params import ParamsError, load_params

from conftest import REPO


def write(tmp_path, edit):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    edit(params)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_shipped_params_and_preset_are_valid():
    demo = load_params(REPO / "params.yaml")
    assert demo.data.root == "artifacts/data/world" and list(demo.data.demo) == ["world"]
    assert all(b.pretrained is None for b in demo.clip.backbones.values())
    assert len({b.model for b in demo.clip.backbones.values()}) >= 2  # the matrix runs in CI
    paper = load_params(REPO / "presets" / "cub-paper.yaml")
    main = paper.clip.backbones[paper.clip.backbone]
    assert (paper.data.root, paper.data.demo) == ("data", {})  # what `fgvc download` fills
    assert (main.model, main.pretrained) == ("ViT-B-32", "openai")
    assert {(b.model, b.pretrained) for b in paper.clip.backbones.values()} == {
        (m, "openai") for m in ("ViT-B-32", "ViT-B-16", "ViT-L-14", "ViT-L-14-336")}
    assert paper.describe.openai.model == "gpt-3.5-turbo"
    assert {paper.describe.every_set[s].prompt for s in paper.zeroshot.descriptions} >= {
        "cbd", "cbd_domain", "cbd_domain_background"}
    assert paper.describe.files["cbd"].path == "data/cbd/descriptors_cub.json"


def test_prompts_live_in_files_not_params():
    """`dvc exp show` lists every params key: prompt texts there hid every metric."""
    def leaves(tree):
        return [v for x in tree.values() for v in (leaves(x) if isinstance(x, dict) else [x])]
    for path in (REPO / "params.yaml", REPO / "presets" / "cub-paper.yaml"):
        texts = [v for v in leaves(yaml.safe_load(path.read_text())) if isinstance(v, str)]
        assert max(map(len, texts)) < 60, path
        assert len(leaves(yaml.safe_load(path.read_text()))) < 120, path


def test_preset_has_the_same_keys_as_the_demo():
    named = {"clip.backbones", "describe.sets", "describe.files", "data.demo"}  # names you pick

    def keys(tree, prefix=""):
        return {prefix + k for k in tree} | {x for k, v in tree.items() if isinstance(v, dict)
                                             and prefix + k not in named
                                             for x in keys(v, prefix + k + ".")}
    demo = yaml.safe_load((REPO / "params.yaml").read_text())
    paper = yaml.safe_load((REPO / "presets" / "cub-paper.yaml").read_text())
    assert keys(demo) == keys(paper)


@pytest.mark.parametrize("edit,message", [
    (lambda p: p["train_adapter"].update(lr=-1), "train_adapter.lr: Input should be greater than 0"),
    (lambda p: p["train_adapter"].update(lerning_rate=0.1), "train_adapter.lerning_rate: unknown key"),
    (lambda p: p["train_adapter"]["early_stopping"].update(val_fraction=0.8), "train_adapter.early_stopping.val_fraction: Input should be less than or equal to 0.5"),
    (lambda p: p["train_adapter"]["early_stopping"].update(val_fraction=-0.1), "train_adapter.early_stopping.val_fraction: Input should be greater than or equal to 0"),
    (lambda p: p["train_adapter"]["early_stopping"].update(eval_every=0), "train_adapter.early_stopping.eval_every: Input should be greater than or equal to 1"),
    (lambda p: p["train_adapter"]["early_stopping"].update(patience="five"), "train_adapter.early_stopping.patience: Input should be a valid integer"),
    (lambda p: p["train_adapter"]["early_stopping"].update(paitence=5), "train_adapter.early_stopping.paitence: unknown key"),
    (lambda p: p["train_adapter"]["early_stopping"].update(val_fraction=0.1, eval_every=500), "train_adapter: early_stopping.eval_every (500) must be less than steps (500)"),
    (lambda p: p["extract"].update(precision="int8"), "extract.precision: must be 'float16' or 'float32'"),
    (lambda p: p["train_qformer"].update(epochs="ten"), "train_qformer.epochs: Input should be a valid integer"),
    (lambda p: p["train_qformer"].update(compile="yes please"), "train_qformer.compile: must be 'auto', True or False (got 'yes please')"),
    (lambda p: p["data"]["demo"]["world"].update(num_classes=1), "data.demo.world.num_classes: Input should be greater than or equal to 2"),
    (lambda p: p.update(extra_section={}), "extra_section: unknown key"),
    (lambda p: p["extract"].update(class_prompts=["a photo of a bird"]), "extract.class_prompts: needs at least one template"),
    (lambda p: p["extract"]["images"].update(max_bad_fraction=1.5), "extract.images.max_bad_fraction: Input should be less than or equal to 1"),
    (lambda p: p["extract"]["images"]["ray"].update(encoders=0), "extract.images.ray.encoders: Input should be greater than or equal to 1"),
    (lambda p: p["extract"]["images"].update(engine="ray", decode="torchvision"), "extract.images: engine 'ray' decodes in CPU tasks"),
    (lambda p: p["describe"].update(set="llm"), "describe: 'llm' is not one of describe.sets or describe.files (attributes, descriptors)"),
    (lambda p: p["describe"]["sets"].update(cbd={"backend": "cbd_json", "path": "x.json"}), "describe: sets.cbd: backend 'cbd_json' belongs in describe.files (describe.sets takes attributes or openai)"),
    (lambda p: p["describe"].update(files={"llm": {"backend": "openai", "prompt": "cbd"}}), "describe: files.llm: backend 'openai' belongs in describe.sets"),
    (lambda p: p["describe"].update(files={"attributes": {"backend": "file", "path": "x.yaml"}}), "describe: 'attributes' named in both sets and files"),
    (lambda p: p["data"].update(coco="/mnt/coco"), "data: coco: '/mnt/coco' must be a path inside data.root"),
    (lambda p: p["data"]["target"].update(split_file="split.txt"), "data.target: split_file is read only by format 'imagefolder'"),
    (lambda p: p["describe"].update(files={"cbd": {"backend": "cbd_json"}}), "describe.files.cbd: backend 'cbd_json' needs path"),
    (lambda p: p["describe"]["sets"].update(cbd={"backend": "cbd_json"}), "describe: sets.cbd: backend 'cbd_json' belongs in describe.files"),
    (lambda p: p["data"]["target"].update(format="imagefolder", path="cars"), "data: reed: Reed et al.'s captions describe CUB's images, and data.target is format 'imagefolder': set data.reed: null"),
    (lambda p: p["data"]["demo"].update(index=p["data"]["demo"]["world"]), "data: demo: 'index' is the data stage's folder"),
    (lambda p: p["data"].update(karpathy_json="../k.json"), "data: karpathy_json: '../k.json' must be a path inside data.coco"),
    (lambda p: p["describe"]["sets"].update(llm={"backend": "openai", "prompt": "cbd", "path": "x.json"}), "describe.sets.llm: path is not read by backend 'openai'"),
    (lambda p: p["describe"]["sets"].update({"my set": {"backend": "attributes"}}), "describe.sets: 'my set': names here are DVC stage and file names (clip@<name>)"),
    (lambda p: p["clip"].update(backbone="ViT-B-32"), "clip: 'ViT-B-32' is not one of clip.backbones (demo-"),
    (lambda p: p["clip"]["backbones"].update({"b/32": {"model": "ViT-B-32"}}), "clip.backbones: 'b/32': names here are DVC stage and file names"),
    (lambda p: p["clip"]["backbones"]["demo-tiny"].update(modle="x"), "clip.backbones.demo-tiny.modle: unknown key"),
    (lambda p: p["train_adapter"].update(text_mapping=["none"]), "train_adapter.text_mapping: must hold 'qformer'"),
    (lambda p: p["describe"].update(files={"cbd": {"backend": "cbd_json", "path": "x.json", "samples_per_class": 2}}), "describe.files.cbd: samples_per_class is not read by backend 'cbd_json'"),
    (lambda p: p["zeroshot"].update(descriptions=["cbd"]), "zeroshot.descriptions: 'cbd' not in describe.sets or describe.files (attributes, descriptors)"),
    (lambda p: p["zeroshot"].update(templates=["paper", "paper"]), "zeroshot.templates: must not repeat a value; repeated: 'paper'"),
    (lambda p: p["zeroshot"]["linear_probe"].update(strengths=[-1.0]), "zeroshot.linear_probe.strengths: strengths must be >= 0"),
    (lambda p: p["describe"]["openai"].update(concurrency=0), "describe.openai.concurrency: Input should be greater than or equal to 1"),
    (lambda p: p["train_qformer"].update(text_input="tokens"), "train_qformer.text_input: 'tokens' needs the per-token features: set extract.texts.tokens: true"),
    (lambda p: p["train_qformer"].update(text_input="words"), "train_qformer.text_input: must be 'pooled' or 'tokens'"),
    (lambda p: p["train_adapter"].update(seeds=[0, 1, 0]), "train_adapter.seeds: must not repeat a value; repeated: 0"),
    (lambda p: p["train_adapter"].update(selection=["global", "global"]), "train_adapter.selection: must not repeat a value; repeated: 'global'"),
    (lambda p: p["extract"].update(class_prompts=["a {}.", "a {}."]), "extract.class_prompts: must not repeat a value; repeated: 'a {}.'"),
])
def test_invalid_params_name_the_key(tmp_path, edit, message):
    with pytest.raises(ParamsError) as error:
        load_params(write(tmp_path, edit))
    assert message in str(error.value)
    assert len(str(error.value).splitlines()) == 1


def test_missing_params_file_is_a_clear_error(tmp_path):
    with pytest.raises(ParamsError, match="no such params file"):
        load_params(tmp_path / "nope.yaml")


def test_early_stopping_is_off_by_default_and_eval_every_only_matters_when_on(tmp_path):
    assert load_params(REPO / "params.yaml").train_adapter.early_stopping.val_fraction == 0
    off = load_params(write(tmp_path, lambda p: p["train_adapter"]["early_stopping"].update(
        eval_every=10_000)))
    assert off.train_adapter.early_stopping.eval_every == 10_000
