"""The layout holds: the library never reaches for the command line or DVC, stages use only
what each package's `__init__` offers, and dvc.yaml's code deps are exactly the code a stage
runs, so a change to any of it reruns the stage and a change elsewhere does not."""

import ast
import importlib
from pathlib import Path

import pytest
import yaml

from conftest import REPO

PIPELINE, STAGES = REPO / "pipeline", REPO / "stages"
PACKAGES = sorted(p.name for p in PIPELINE.iterdir() if (p / "__init__.py").is_file())
# stages/ helpers that compute nothing and are deliberately no dependency (see dvc.yaml)
HELPERS = {"common", "layout", "params", "preset", "compare", "cli", "bench", "download"}
MODULES = sorted(p.stem for p in PIPELINE.glob("*.py") if p.stem != "__init__")  # common, config


def imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth of its code (stages import lazily)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def imported_names(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every `from pipeline... import name` in a file."""
    return [(node.module, alias.name) for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pipeline")
            for alias in node.names]


def pipeline_parts(modules: set[str]) -> set[str]:
    """The pipeline packages (and top-level modules: common.py, config.py) among imported
    modules: 'pipeline.clip.loading' -> 'clip'."""
    return {m.split(".")[1] for m in modules if m.startswith("pipeline.")}


def settings_methods() -> dict[str, str]:
    """Method and property name -> its package, of every class in a package's settings.py
    (a stage that calls one runs that package's code through params, not through an import)."""
    found = {}
    for path in PIPELINE.glob("*/settings.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and not item.name.startswith("_"):
                        found[item.name] = path.parent.name
    return found


def called_settings(path: Path) -> set[str]:
    """The packages whose settings methods `path` calls (`settings.describe.provenance(...)`)."""
    methods = settings_methods()
    return {methods[node.attr] for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Attribute) and node.attr in methods}


def part_path(part: str) -> str:
    return f"pipeline/{part}.py" if part in MODULES else f"pipeline/{part}"


def package_closure(start: set[str]) -> set[str]:
    """`start` and every pipeline package (or top-level module) its code imports, transitively."""
    done, todo = set(), set(start)
    while todo:
        part = todo.pop()
        done.add(part)
        files = ([PIPELINE / f"{part}.py"] if part in MODULES
                 else list((PIPELINE / part).rglob("*.py")))
        todo |= pipeline_parts(set().union(*(imports(f) for f in files))) - done
    return done


def test_bytecode_beside_the_code_is_no_dependency():
    """Folder deps are hashed file by file: Python's __pycache__ beside the code would change
    every stage's hash on every machine that imports it (DVC reads .dvcignore, not .gitignore)."""
    from dvc.repo import Repo

    ignore = Repo(str(REPO)).dvcignore
    package = REPO / "pipeline" / "data"
    assert ignore.is_ignored_dir(str(package / "__pycache__"))
    assert ignore.is_ignored_file(str(package / "__pycache__" / "cub.cpython-311.pyc"))
    assert ignore.is_ignored_file(str(package / "cub.pyc"))
    assert not ignore.is_ignored_file(str(package / "cub.py"))


def test_resume_logs_are_not_part_of_a_folder_dvc_hashes():
    """An image set's resume log (file sizes and times: machine-local) lies beside it, where a
    folder of feature sets (templates, descriptions) would hold it: a forced rerun must give the
    same folder hash."""
    from dvc.repo import Repo

    from pipeline.features.store import resume_log_path

    ignore = Repo(str(REPO)).dvcignore
    features = REPO / "artifacts" / "extract" / "cub" / "demo-tiny"
    for folder in (features / "target_images", features / "descriptions" / "attributes"):
        assert ignore.is_ignored_file(str(resume_log_path(folder)))
        assert not ignore.is_ignored_file(str(folder / "manifest.json"))


def test_the_library_knows_nothing_of_the_cli_or_dvc():
    for path in PIPELINE.rglob("*.py"):
        bad = {m for m in imports(path) if m.split(".")[0] in {"stages", "typer", "dvc", "dvclive"}}
        assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_says_what_it_does_and_what_it_offers(package):
    module = importlib.import_module(f"pipeline.{package}")
    assert module.__doc__ and len(module.__doc__.split()) >= 15, f"pipeline/{package}: no docstring"
    for name in module.__all__:
        assert hasattr(module, name), f"pipeline.{package}.__all__ names {name}, which it lacks"


def test_stages_use_only_the_public_names_of_each_package():
    for path in STAGES.glob("*.py"):
        for module, name in imported_names(path):
            if module.split(".")[1] in MODULES:  # common.py, config.py: modules, not packages
                continue
            assert module.count(".") == 1, (f"{path.name} imports {module}: import from the "
                                            f"package (pipeline.{module.split('.')[1]})")
            assert name in importlib.import_module(module).__all__, (
                f"{path.name} imports {name}, which {module}.__all__ does not offer")


def module_of(stage: str) -> str:
    """The stages/ module a dvc.yaml stage (group) runs: describe_file@ and describe_control@
    run describe's, data_coco data's, extract_<set>@ extract's."""
    if stage in ("describe_file", "describe_control"):
        return "describe"
    if stage == "data_coco":
        return "data"
    return "extract" if stage.startswith("extract_") else stage


def test_dvc_yaml_code_deps_are_the_code_each_stage_runs():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        stage = stage.get("do", stage)  # foreach stages
        code = {d for d in stage["deps"] if d.startswith(("pipeline/", "stages/"))}
        name = module_of(name)
        module = STAGES / f"{name}.py"
        runs = package_closure(pipeline_parts(imports(module)) | called_settings(module))
        expected = {f"stages/{name}.py"} | {part_path(part) for part in runs}
        assert code == expected, f"dvc.yaml, stage {name}: code deps {sorted(code)}, runs {sorted(expected)}"
        # a stage imports no other stage, except helpers that compute nothing
        others = {m.split(".")[1] for m in imports(module) if m.startswith("stages.")} - HELPERS
        assert not others, f"stages/{name}.py imports stages {sorted(others)}"
