import pytest
import yaml

from conftest import REPO
from stages.params import Params, ParamsError, load_params
from stages.preset import preset, render_params

SUITE = {  # issue 22: the suite's presets: (format, domain)
    "oxford-pets": ("oxford_pets", "pet"), "flowers102": ("flowers102", "flower"),
    "fgvc-aircraft": ("fgvc_aircraft", "aircraft"), "food101": ("food101", "food")}
PRESETS = ["cub-paper", "stanford-cars", *SUITE]


def write(tmp_path, edit):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    edit(params)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_shipped_params_are_the_defaults_and_the_presets_are_valid():
    demo = load_params(REPO / "params.yaml")
    assert demo == Params()  # no code default disagrees with params.yaml
    assert (REPO / "params.yaml").read_text() == render_params(Params())  # `fgvc preset demo`
    assert demo.data.root == "artifacts/data/world" and list(demo.data.demo) == ["world"]
    assert all(b.pretrained is None for b in demo.clip.backbones.values())
    assert len({b.model for b in demo.clip.backbones.values()}) >= 2  # the matrix runs in CI
    paper = preset("cub-paper", REPO / "presets")
    main = paper.clip.backbones[paper.clip.adapter_backbones[0]]
    assert (paper.data.root, paper.data.demo) == ("data", {})  # what `fgvc download` fills
    assert (main.model, main.pretrained) == ("ViT-B-32", "openai")
    assert {(b.model, b.pretrained) for b in paper.clip.backbones.values()} == {
        (m, "openai") for m in ("ViT-B-32", "ViT-B-16", "ViT-L-14", "ViT-L-14-336")}
    assert paper.describe.openai.model == "gpt-3.5-turbo"
    assert {getattr(paper.describe.every_set[s], "prompt", None)
            for s in paper.zeroshot.descriptions} >= {
        "cbd", "cbd_domain", "cbd_domain_background"}
    assert paper.describe.files["cbd"].path == "data/cbd/descriptors_cub.json"
    assert paper.train_qformer.model.hidden_size == 768 and paper.train_adapter.seeds == [0, 1, 2]
    cars = preset("stanford-cars", REPO / "presets")  # extends cub-paper
    assert (cars.data.target.format, cars.data.captions) == ("stanford_cars", None)
    assert cars.train_qformer == paper.train_qformer and cars.clip == paper.clip


@pytest.mark.parametrize("name", SUITE)
def test_the_suite_presets_read_their_set_with_the_domain_prompts(name):
    """Issue 22: one preset per set of the suite, in its own format, with the template set and
    the LLM prompt named for its domain; the rest is cub-paper's."""
    from pipeline.describe.prompts import load_prompt
    from pipeline.features import load_template_set

    (format, domain), paper = SUITE[name], preset("cub-paper", REPO / "presets")
    suite = preset(name, REPO / "presets")
    assert (suite.data.target.format, suite.data.captions) == (format, None)
    assert suite.zeroshot.templates[0] == domain
    assert suite.describe.every_set["llm"].prompt == domain
    assert load_template_set(domain, REPO / "prompts" / "templates") == [
        "a photo of {}, a type of food." if domain == "food" else
        f"a photo of a {{}}, a type of {domain}."]  # CoOp's (and CLIP's) template for the set
    assert "{class_name}" in load_prompt(domain, REPO / "prompts" / "describe").user
    assert suite.train_qformer == paper.train_qformer and suite.clip == paper.clip


DOWNLOADS = {"oxford-pets": "pets", "flowers102": "flowers102", "fgvc-aircraft": "aircraft",
             "food101": "food101", "stanford-cars": "cars"}  # preset -> `fgvc download <set>`


@pytest.mark.parametrize("name", PRESETS)
def test_the_presets_read_what_fgvc_download_writes(name):
    """Each set's preset reads the folder `fgvc download` fills, in its format, and CBD's
    published descriptors where CBD published some (CUB, Pets, Food-101), scored zero-shot."""
    from pipeline.sources import SOURCES, TARGETS

    chosen = preset(name, REPO / "presets")
    if name in DOWNLOADS:
        format, path, _ = TARGETS[DOWNLOADS[name]]
        assert (chosen.data.target.format, chosen.data.target.path) == (format, path)
    downloaded = {f"{chosen.data.root}/{source.target}" for source in SOURCES.values()}
    cbd = {key: entry.path for key, entry in chosen.describe.files.items()
           if entry.backend == "cbd_json"}
    assert set(cbd.values()) <= downloaded
    assert (list(cbd), bool(cbd)) == (["cbd"] * bool(cbd),
                                      name in {"cub-paper", "oxford-pets", "food101"})
    assert all(key in chosen.zeroshot.descriptions for key in cbd)


def rendered(name: str) -> dict:
    """The params file `fgvc preset <name>` writes, as YAML reads it."""
    return yaml.safe_load(render_params(preset(name, REPO / "presets"), name))


@pytest.mark.parametrize("name", ["demo", *PRESETS])
def test_prompts_live_in_files_not_params(name):
    """`dvc exp show` lists every params key: prompt texts there hid every metric."""
    def values(tree):
        return [v for x in tree.values() for v in (values(x) if isinstance(x, dict) else [x])]
    texts = [v for v in values(rendered(name)) if isinstance(v, str)]
    assert max(map(len, texts)) < 60, name
    # nine adapter methods, four control sets (cub-paper: five): about 160
    assert len(values(rendered(name))) < 180, name


def test_every_preset_writes_the_keys_the_demo_has():
    """dvc.yaml names params keys: every preset's params.yaml must have them all."""
    named = WHOLE  # names you pick, formats' own keys

    def keys(tree, prefix=""):
        return {prefix + k for k in tree} | {x for k, v in tree.items() if isinstance(v, dict)
                                             and prefix + k not in named
                                             for x in keys(v, prefix + k + ".")}
    demo = keys(yaml.safe_load((REPO / "params.yaml").read_text()))
    for name in PRESETS:
        assert keys(rendered(name)) == demo, name


WHOLE = {"clip.backbones", "describe.sets", "describe.files", "describe.controls", "data.demo",
         "data.targets",
         "data.target", "zeroshot.baselines", "train_adapter.methods"}  # a preset replaces these whole


def leaves(tree, prefix=""):
    """{dotted key: value} of a params tree, down to the scalars and lists and what a preset
    replaces whole."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value and prefix + key not in WHOLE:
            flat.update(leaves(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


@pytest.mark.parametrize("name", PRESETS)
def test_a_preset_holds_only_what_differs(name):
    changes = yaml.safe_load((REPO / "presets" / f"{name}.yaml").read_text())
    base = preset(changes.pop("extends", "demo"), REPO / "presets").model_dump()
    flat_base = leaves(base)
    for key, value in leaves(changes).items():
        assert flat_base.get(key, "absent") != value, f"{name}: {key} repeats its base's value"


def test_presets_replace_named_entries_whole_and_merge_the_rest(tmp_path):
    (tmp_path / "mine.yaml").write_text(
        "clip:\n  backbones:\n    b32: {model: ViT-B-32, pretrained: openai}\n"
        "  adapter_backbones: [b32]\ntrain_adapter:\n  methods:\n    linear: {steps: 7}\n"
        "extract:\n  images: {batch_size: 8}\n")
    mine = preset("mine", tmp_path)
    assert list(mine.clip.backbones) == ["b32"]  # the demo's two are gone
    assert mine.train_adapter.methods["linear"].steps == 7
    assert mine.train_adapter.methods["linear"].lr == Params().train_adapter.methods["linear"].lr
    assert mine.extract.images.batch_size == 8
    assert mine.extract.images.decode == Params().extract.images.decode  # merged, not replaced
    written = render_params(mine, "mine", tmp_path)
    assert load_params_text(tmp_path, written) == mine


def load_params_text(folder, text):
    (folder / "written.yaml").write_text(text)
    return load_params(folder / "written.yaml")


def test_a_bad_preset_names_the_preset_and_the_key(tmp_path):
    (tmp_path / "bad.yaml").write_text("train_qformer:\n  lr: -1\n")
    with pytest.raises(ParamsError) as error:
        preset("bad", tmp_path)
    assert str(error.value) == (f"{tmp_path / 'bad.yaml'}: train_qformer.lr: Input should be "
                                "greater than 0 (got -1)")
    with pytest.raises(ParamsError, match="no such preset"):
        preset("nope", tmp_path)
    (tmp_path / "loop.yaml").write_text("extends: loop\n")
    with pytest.raises(ParamsError, match="extends itself"):
        preset("loop", tmp_path)


def test_fgvc_preset_writes_params_and_keeps_an_edited_one(tmp_path):
    from typer.testing import CliRunner

    from stages.cli import app

    out = tmp_path / "params.yaml"
    out.write_text("# my edits\n")
    result = CliRunner().invoke(app, ["preset", "cub-paper", "--out", str(out),
                                      "--presets", str(REPO / "presets")])
    assert result.exit_code == 0, result.output
    assert load_params(out) == preset("cub-paper", REPO / "presets")
    assert (tmp_path / "params.yaml.bak").read_text() == "# my edits\n"


def test_no_library_function_defaults_a_setting_otherwise():
    """A library default for a parameter named like a setting (shard_rows, max_iter, amp...) is
    that setting's default: the one place a default lives is its settings section."""
    import importlib
    import inspect
    import pkgutil

    import pipeline

    defaults: dict[str, set] = {}

    def collect(model):
        for name in type(model).model_fields:
            value = getattr(model, name)
            if hasattr(value, "model_fields"):
                collect(value)
            elif isinstance(value, dict):
                for entry in value.values():
                    if hasattr(entry, "model_fields"):
                        collect(entry)
            else:
                defaults.setdefault(name, set()).add(repr(value))

    collect(Params())
    # names that mean something else in the library: a resolved torch device (the settings say
    # "auto"), "the settings' own" (None), an engine object, token states, an inference chunk
    for name in ("device", "num_workers", "engine", "tokens"):
        defaults.pop(name)
    inference = {"map_texts", "validation_metrics"}  # batch_size: rows per forward, not training
    found = []
    for module in pkgutil.walk_packages(pipeline.__path__, "pipeline."):
        if module.name.endswith("ray_engine"):
            continue  # Ray is optional
        loaded = importlib.import_module(module.name)
        for name, function in vars(loaded).items():
            if not inspect.isfunction(function) or function.__module__ != module.name:
                continue
            for parameter in inspect.signature(function).parameters.values():
                if parameter.name == "batch_size" and name in inference:
                    continue
                if (parameter.name in defaults and parameter.default is not inspect.Parameter.empty
                        and repr(parameter.default) not in defaults[parameter.name]):
                    found.append(f"{module.name}.{name}({parameter.name}={parameter.default!r})")
    assert not found, found


LINEAR = "train_adapter.methods.linear"


def linear(p):
    return p["train_adapter"]["methods"]["linear"]


def test_each_target_reads_data_target_or_its_own_settings():
    """data.targets: {} is data.target with data.captions; an entry with a format is a dataset
    of its own (nothing inherited, no captions unless it says so); one without a format
    overrides data.target's keys. A file describes the first target unless it names one, and a
    target scores only the sets made for it."""
    from stages.params import validate_params

    params = validate_params({"data": {"targets": {
        "cub": {}, "copy": {"path": "CUB_copy", "names": "dataset"},
        "pets": {"format": "oxford_pets", "path": "oxford_pets"}}},
        "describe": {"files": {"cub_file": {"backend": "file", "path": "c.yaml"},
                               "pets_file": {"backend": "file", "path": "p.yaml", "target": "pets"}}},
        "zeroshot": {"descriptions": ["attributes", "cub_file", "pets_file", "shuffled"]}},
        "params.yaml")
    cub, copy, pets = (params.for_target(name) for name in ("cub", "copy", "pets"))
    assert (cub.data.target.format, cub.data.target.path, cub.data.captions) == (
        "cub", "CUB_200_2011", "text_c10")
    assert (copy.data.target.format, copy.data.target.path, copy.data.target.names,
            copy.data.captions) == ("cub", "CUB_copy", "dataset", "text_c10")
    assert (pets.data.target.format, pets.data.target.path, pets.data.target.names,
            pets.data.captions) == ("oxford_pets", "oxford_pets", "auto", None)
    assert params.describe.files["cub_file"].target == "cub"  # the first target, written out
    assert cub.zeroshot.descriptions == ["attributes", "cub_file", "shuffled"]
    assert pets.zeroshot.descriptions == ["attributes", "pets_file", "shuffled"]
    assert [t.target for t in (cub, copy, pets)] == ["cub", "copy", "pets"]
    with pytest.raises(ParamsError, match=r"data.targets has 3 targets: name one "
                                          r"\(--target cub \| copy \| pets\)"):
        params.for_target(None)
    with pytest.raises(ParamsError, match="data.targets has no target 'dogs'"):
        params.for_target("dogs")


@pytest.mark.parametrize("edit,message", [
    (lambda p: linear(p).update(lr=-1), f"{LINEAR}.lr: Input should be greater than 0"),
    (lambda p: linear(p).update(lerning_rate=0.1), f"{LINEAR}.lerning_rate: unknown key"),
    (lambda p: linear(p)["early_stopping"].update(val_fraction=0.8), f"{LINEAR}.early_stopping.val_fraction: Input should be less than or equal to 0.5"),
    (lambda p: linear(p)["early_stopping"].update(val_fraction=-0.1), f"{LINEAR}.early_stopping.val_fraction: Input should be greater than or equal to 0"),
    (lambda p: linear(p)["early_stopping"].update(eval_every=0), f"{LINEAR}.early_stopping.eval_every: Input should be greater than or equal to 1"),
    (lambda p: linear(p)["early_stopping"].update(patience="five"), f"{LINEAR}.early_stopping.patience: Input should be a valid integer"),
    (lambda p: linear(p)["early_stopping"].update(paitence=5), f"{LINEAR}.early_stopping.paitence: unknown key"),
    (lambda p: linear(p)["early_stopping"].update(val_fraction=0.1, eval_every=500), f"{LINEAR}: early_stopping.eval_every (500) must be less than steps (500)"),
    (lambda p: linear(p).update(text_mapping=["none"]), f"{LINEAR}.text_mapping: must hold 'qformer'"),
    (lambda p: p["train_adapter"]["methods"].update(lora={}), "train_adapter.methods.lora: 'lora' is not a known adapter method (known: "),
    (lambda p: p["train_adapter"]["budgets"].update(ratios=[], shots=[]), "train_adapter.budgets: ratios and shots are both empty: no budget to train on"),
    (lambda p: p["train_adapter"]["budgets"].update(shots=[0, 1]), "train_adapter.budgets.shots.0: Input should be greater than or equal to 1"),
    (lambda p: p["train_adapter"]["budgets"].update(ratios=[10, 10]), "train_adapter.budgets.ratios: must not repeat a value; repeated: 10"),
    (lambda p: p["train_adapter"]["budgets"].update(folds=1), "train_adapter.budgets.folds: Input should be greater than or equal to 2"),
    (lambda p: p["train_adapter"].update(cpu_threads=-1), "train_adapter.cpu_threads: Input should be greater than or equal to 0"),
    (lambda p: p["train_adapter"]["methods"]["tip"].update(betas=[0.0]), "train_adapter.methods.tip.betas.0: Input should be greater than 0"),
    (lambda p: p["train_adapter"]["methods"]["text_prior"].update(mapping="clip"), "train_adapter.methods.text_prior.mapping: must be 'qformer' or 'none'"),
    (lambda p: p["train_adapter"]["methods"]["probe"].update(strengths=[]), "train_adapter.methods.probe.strengths: List should have at least 1 item"),
    (lambda p: p["zeroshot"]["baselines"].update(waffle={}), "zeroshot.baselines.waffle: 'waffle' is not a known zero-shot baseline (known: "),
    (lambda p: p["zeroshot"].update(baselines={}), "zeroshot.baselines: Dictionary should have at least 1 item"),
    (lambda p: p["zeroshot"].update(templates=[]), "zeroshot.templates: List should have at least 1 item"),
    (lambda p: p["zeroshot"]["baselines"]["cbd"].update(pictures=-1), "zeroshot.baselines.cbd.pictures: Input should be greater than or equal to 0"),
    (lambda p: p["extract"].update(precision="int8"), "extract.precision: must be 'float16' or 'float32'"),
    (lambda p: p["train_qformer"].update(epochs="ten"), "train_qformer.epochs: Input should be a valid integer"),
    (lambda p: p["train_qformer"]["model"].update(pooling="max"), "train_qformer.model.pooling: must be 'mean' or 'first'"),
    (lambda p: p["train_qformer"].update(compile="yes please"), "train_qformer.compile: must be 'auto', True or False (got 'yes please')"),
    (lambda p: p["data"]["demo"]["world"].update(num_classes=1), "data.demo.world.num_classes: Input should be greater than or equal to 2"),
    (lambda p: p.update(extra_section={}), "extra_section: unknown key"),
    (lambda p: p["extract"]["images"].update(max_bad_fraction=1.5), "extract.images.max_bad_fraction: Input should be less than or equal to 1"),
    (lambda p: p["extract"]["images"]["ray"].update(encoders=0), "extract.images.ray.encoders: Input should be greater than or equal to 1"),
    (lambda p: p["extract"]["images"].update(engine="ray", decode="torchvision"), "extract.images: engine 'ray' decodes in CPU tasks"),
    (lambda p: p["train_adapter"].update(descriptions="llm"), "train_adapter.descriptions: 'llm' is not one of describe.sets or describe.files (attributes, attributes_weak, descriptors; controls are scored zero-shot only)"),
    (lambda p: p["train_adapter"].update(priors=["attributes", "llm"]), "train_adapter.priors: 'llm' not in describe.sets or describe.files (attributes, attributes_weak, descriptors; controls are scored zero-shot only)"),
    (lambda p: p["train_adapter"].update(priors=[]), "train_adapter.priors: Value should have at least 1 item after validation, not 0"),
    (lambda p: (p["describe"]["sets"].update(none={"backend": "attributes"}), p["train_adapter"].update(priors=["none"])), "train_adapter.priors: 'none' marks a method without a prior"),
    (lambda p: p["describe"]["sets"]["attributes_weak"].update(wrong_traits=1.5), "describe.sets.attributes_weak.wrong_traits: Input should be less than or equal to 1"),
    (lambda p: p["describe"]["sets"].update(llm={"backend": "openai", "prompt": "cbd", "wrong_traits": 0.3}), "describe.sets.llm: wrong_traits is not read by backend 'openai'"),
    (lambda p: p["describe"]["sets"].update(cbd={"backend": "cbd_json", "path": "x.json"}), "describe: sets.cbd: backend 'cbd_json' belongs in describe.files (describe.sets takes attributes or openai)"),
    (lambda p: p["describe"].update(files={"llm": {"backend": "openai", "prompt": "cbd"}}), "describe: files.llm: backend 'openai' belongs in describe.sets"),
    (lambda p: p["describe"].update(files={"attributes": {"backend": "file", "path": "x.yaml"}}), "describe: 'attributes' named in both sets and files"),
    (lambda p: p["data"].update(coco="/mnt/coco"), "data: coco: '/mnt/coco' must be a path inside data.root"),
    (lambda p: p["data"]["target"].update(split_file="split.txt"), "data.target.split_file: unknown key"),
    (lambda p: p["data"]["target"].update(format="voc"), "data.target: format: 'voc' is not a known target format (known: cub, "),
    (lambda p: p["data"]["target"].update(format="imagefolder", path="cars", split_file="../s.txt"), "data.target.split_file: '../s.txt' must be a path inside data.root"),
    (lambda p: p["describe"].update(files={"cbd": {"backend": "cbd_json"}}), "describe.files.cbd: backend 'cbd_json' needs path"),
    (lambda p: p["describe"]["sets"].update(cbd={"backend": "cbd_json"}), "describe: sets.cbd: backend 'cbd_json' belongs in describe.files"),
    (lambda p: p["data"]["target"].update(format="imagefolder", path="cars"), "data: captions: per-image captions are read in Reed et al.'s layout, which mirrors CUB's images/ folder, and data.target is format 'imagefolder': set data.captions: null"),
    (lambda p: p["data"]["demo"].update(index=p["data"]["demo"]["world"]), "data: demo: 'index' is the data stage's folder"),
    (lambda p: p["data"].update(karpathy_json="../k.json"), "data: karpathy_json: '../k.json' must be a path inside data.coco"),
    (lambda p: p["data"].update(targets={}), "data.targets: needs at least one entry"),
    (lambda p: p["data"]["targets"].update(coco={}), "data: targets: 'coco': a target's name is a folder and part of stage names"),
    (lambda p: p["data"]["targets"].update({"pet-s": {}}), "data: targets: 'pet-s': a target's name is a folder and part of stage names"),
    (lambda p: p["data"]["targets"].update(pets={"format": "oxford_pets"}), "data: targets.pets.path: Field required"),
    (lambda p: p["data"]["targets"].update(pets={"format": "oxford_pets", "path": "p", "split": "x"}), "data: targets.pets.split: unknown key"),
    (lambda p: p["data"]["targets"].update(pets={"format": "oxford_pets", "path": "p", "captions": "text_c10"}), "data: targets.pets.captions: per-image captions are read in Reed et al.'s layout"),
    (lambda p: p["data"]["targets"].update(copy={"path": "../CUB"}), "data: targets.copy.path: '../CUB' must be a path inside data.root"),
    (lambda p: p["data"]["targets"].update(pets="oxford_pets"), "data.targets.pets: Input should be a valid dictionary (got 'oxford_pets')"),
    (lambda p: p["describe"].update(files={"own": {"backend": "file", "path": "x.yaml", "target": "pets"}}), "describe.files.own.target: 'pets' is not a key of data.targets (cub)"),
    (lambda p: (p["data"]["targets"].update(pets={"format": "oxford_pets", "path": "p"}), p["describe"].update(files={"own": {"backend": "file", "path": "x.yaml"}}), p["describe"]["controls"].update(own_words={"kind": "words", "of": "own"})), "describe.controls.own_words.of: 'own' is a file of target 'cub', and a control runs on every target"),
    (lambda p: (p["data"]["targets"].update(pets={"format": "oxford_pets", "path": "p"}), p["describe"].update(files={"own": {"backend": "file", "path": "x.yaml", "target": "cub"}}), p["train_adapter"].update(priors=["attributes", "own"])), "train_adapter.priors: 'own' is made for another target, not for 'pets'"),
    (lambda p: p["describe"]["sets"].update(llm={"backend": "openai", "prompt": "cbd", "target": "cub"}), "describe.sets.llm: target is not read by backend 'openai'"),
    (lambda p: p["describe"]["sets"].update(llm={"backend": "openai", "prompt": "cbd", "path": "x.json"}), "describe.sets.llm: path is not read by backend 'openai'"),
    (lambda p: p["describe"]["sets"].update({"my set": {"backend": "attributes"}}), "describe.sets: 'my set': names here are DVC stage and file names (clip@<name>)"),
    (lambda p: p["clip"].update(adapter_backbones=["ViT-B-32"]), "clip: adapter_backbones: 'ViT-B-32' not in clip.backbones (demo-"),
    (lambda p: p["clip"].update(adapter_backbones=[]), "clip.adapter_backbones: needs at least one entry"),
    (lambda p: p["clip"]["backbones"].update({"b/32": {"model": "ViT-B-32", "pretrained": None}}), "clip.backbones: 'b/32': names here are DVC stage and file names"),
    (lambda p: p["clip"]["backbones"]["demo-tiny"].update(modle="x"), "clip.backbones.demo-tiny.modle: unknown key"),
    (lambda p: p["clip"]["backbones"]["demo-tiny"].update(library="jax_clip"), "clip.backbones.demo-tiny.library: 'jax_clip' is not a known CLIP library (known: "),
    (lambda p: p["clip"]["backbones"].update(b32={"model": "ViT-B-32"}), "clip.backbones.b32.pretrained: missing (every entry needs it)"),
    (lambda p: p["describe"].update(files={"cbd": {"backend": "cbd_json", "path": "x.json", "samples_per_class": 2}}), "describe.files.cbd: samples_per_class is not read by backend 'cbd_json'"),
    (lambda p: p["train_adapter"].update(priors=["attributes", "shuffled"]), "train_adapter.priors: 'shuffled' not in describe.sets or describe.files (attributes, attributes_weak, descriptors; controls are scored zero-shot only)"),
    (lambda p: p["describe"]["controls"]["shuffled"].update(of="cbd"), "describe: controls.shuffled.of: 'cbd' is not a set of describe.sets or describe.files (attributes, attributes_weak, descriptors)"),
    (lambda p: p["describe"]["controls"]["shuffled"].update(of="random_words"), "describe: controls.shuffled.of: 'random_words' is not a set of describe.sets or describe.files"),
    (lambda p: p["describe"]["controls"]["random_words"].update(pairs=3), "describe.controls.random_words: pairs is read by kind 'waffle' only, not 'words'"),
    (lambda p: p["describe"]["controls"]["shuffled"].update(concept="bird"), "describe.controls.shuffled: concept is not read by kind 'shuffled'"),
    (lambda p: p["describe"]["controls"]["shuffled"].update(draws=0), "describe.controls.shuffled.draws: Input should be greater than or equal to 1"),
    (lambda p: p["describe"]["controls"]["shuffled"].update(kind="scrambled"), "describe.controls.shuffled.kind: must be 'words', 'characters', 'waffle' or 'shuffled' (got 'scrambled')"),
    (lambda p: p["describe"]["controls"].update(descriptors={"kind": "words", "of": "attributes"}), "describe: controls: 'descriptors' also named in sets or files"),
    (lambda p: p["train_adapter"]["methods"]["lp_pp"].update(eval_every=400), "train_adapter.methods.lp_pp: steps (300) is not a multiple of eval_every (400): the step counts tried must end at steps"),
    (lambda p: p["train_adapter"]["methods"]["lp_pp"].update(alpha_every=301), "train_adapter.methods.lp_pp: alpha_every (301) is more than steps (300): the blend weights would never move"),
    (lambda p: p["train_adapter"]["methods"]["tip_f"].update(lr=0), "train_adapter.methods.tip_f.lr: Input should be greater than 0"),
    (lambda p: p["zeroshot"].update(descriptions=["cbd"]), "zeroshot.descriptions: 'cbd' not in describe.sets, files or controls (attributes, attributes_weak, descriptors, random_characters, random_words, shuffled, waffle_bird)"),
    (lambda p: p["zeroshot"].update(templates=["paper", "paper"]), "zeroshot.templates: must not repeat a value; repeated: 'paper'"),
    (lambda p: p["zeroshot"]["baselines"]["linear_probe"].update(strengths=[-1.0]), "zeroshot.baselines.linear_probe.strengths: strengths must be >= 0"),
    (lambda p: p["describe"]["openai"].update(concurrency=0), "describe.openai.concurrency: Input should be greater than or equal to 1"),
    (lambda p: p["train_qformer"].update(text_input="tokens"), "train_qformer.text_input: 'tokens' needs the per-token features: set extract.texts.tokens: true"),
    (lambda p: p["train_qformer"].update(text_input="words"), "train_qformer.text_input: must be 'pooled' or 'tokens'"),
    (lambda p: p["train_adapter"].update(seeds=[0, 1, 0]), "train_adapter.seeds: must not repeat a value; repeated: 0"),
    (lambda p: p["train_adapter"].update(selection=["global", "global"]), "train_adapter.selection: must not repeat a value; repeated: 'global'"),
    # keys an earlier params.yaml had: each names its new place
    (lambda p: p["clip"].update(backbone="demo-tiny"), "clip.backbone: renamed: it is clip.adapter_backbones (a list of clip.backbones keys) now"),
    (lambda p: p["data"].update(reed="text_c10"), "data.reed: renamed: it is data.captions now"),
    (lambda p: p["data"].update(reed=None), "data.reed: renamed: it is data.captions now"),
    (lambda p: p["describe"].update(set="attributes"), "describe.set: renamed: it is train_adapter.descriptions now"),
    (lambda p: p["extract"].update(class_prompts=["a {}."]), "extract.class_prompts: renamed: it is zeroshot.templates"),
    (lambda p: p["train_adapter"].update(llm_per_image=10), "train_adapter.llm_per_image: renamed: it is train_adapter.descriptions_per_image now"),
    (lambda p: p["train_adapter"].update(steps=500), "train_adapter.steps: renamed: it is train_adapter.methods.linear.steps now"),
    (lambda p: p["train_qformer"].update(num_queries=8), "train_qformer.num_queries: renamed: it is train_qformer.model.num_queries now"),
    (lambda p: p["zeroshot"].update(linear_probe={}), "zeroshot.linear_probe: renamed: it is zeroshot.baselines.linear_probe now"),
    (lambda p: p["train_adapter"]["budgets"].update(shot_seeds=[1]), "train_adapter.budgets.shot_seeds: renamed: it is train_adapter.budgets.seeds"),
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
    stopping = load_params(REPO / "params.yaml").train_adapter.methods["linear"].early_stopping
    assert stopping.val_fraction == 0
    off = load_params(write(tmp_path, lambda p: linear(p)["early_stopping"].update(
        eval_every=10_000)))
    assert off.train_adapter.methods["linear"].early_stopping.eval_every == 10_000


def test_a_key_given_twice_is_refused_with_its_line(tmp_path):
    root = "\n  root: artifacts/data/world\n"
    text = (REPO / "params.yaml").read_text().replace(root, root + "  root: data\n", 1)
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ParamsError, match=r"not valid YAML at line \d+ \(the key 'root' is "
                       r"given twice\)"):
        load_params(tmp_path / "params.yaml")


def test_loading_params_imports_no_model_library():
    """Every command validates params first: that must not cost torch's import."""
    import subprocess
    import sys

    code = ("import sys; from stages.params import load_params; load_params('params.yaml'); "
            "heavy = {'torch', 'open_clip', 'transformers'} & set(sys.modules); "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
