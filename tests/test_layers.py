"""The import layering of the product, read from the source with ``ast`` (imports inside
functions included).

Layers, lowest first:

0. ``dali_cmo`` (the package itself), ``dali_cmo.ops``, ``dali_cmo.data``,
   ``dali_cmo.augment``, ``dali_cmo.constants``;
1. ``dali_cmo.streams`` (which stream, read by whom, pasted when), on the data path;
2. ``pipelines`` (the DALI pipeline definitions);
3. ``dali_cmo.training`` (the trainer's parts);
4. ``dali_cmo.cli``, ``dali_cmo.__main__`` and ``train.py`` (the command lines).

The rule enforced: no module imports a module of a higher layer, and no module of ``dali_cmo``
imports ``pipelines`` at all. So ``dali_cmo.training``, although above ``pipelines``, only
receives pipeline objects (or factories of them) from ``train.py``, and the installed library
imports without the top-level ``pipelines`` package: no cycle between the two.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"dali_cmo": 0, "dali_cmo.ops": 0, "dali_cmo.data": 0, "dali_cmo.augment": 0,
          "dali_cmo.constants": 0, "dali_cmo.streams": 1, "pipelines": 2, "dali_cmo.training": 3,
          "dali_cmo.cli": 4, "dali_cmo.__main__": 4, "train": 4}
PROJECT = ("dali_cmo", "pipelines", "train")


def layer(module: str) -> int | None:
    """The layer of ``module``: its longest prefix in LAYERS (``dali_cmo`` alone names only the
    package's ``__init__``), None outside the project."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in LAYERS and (prefix != "dali_cmo" or n == len(parts)):
            return LAYERS[prefix]
    if parts[0] in PROJECT:
        raise AssertionError(f"{module}: in no layer; add it to LAYERS in {__file__}")
    return None


def product_modules() -> dict[str, Path]:
    """Module name -> file for every module of ``dali_cmo``, ``pipelines`` and ``train.py``."""
    modules = {"train": ROOT / "train.py"}
    for package in ("dali_cmo", "pipelines"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import in ``path``, at any depth; ``from X import
    y`` counts as X and, where it is a module, X.y."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package up
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def violations(modules: dict[str, Path]) -> list[str]:
    """Every import of ``modules`` that breaks the rule, as ``a:line (layer) imports b
    (layer)``."""
    problems = []
    for module, path in modules.items():
        own = layer(module)
        for line, target in imported(module, path):
            if target.split(".")[0] not in PROJECT or (target not in modules and
                                                       target.rpartition(".")[0] in modules):
                continue  # outside the project, or a name (not a module) from a module
            other = layer(target)
            if other > own or (module.startswith("dali_cmo") and target.startswith("pipelines")):
                problems.append(f"{module}:{line} (layer {own}) imports {target} (layer {other})")
    return problems


def test_no_module_imports_from_a_higher_layer():
    assert violations(product_modules()) == []


def test_the_check_catches_an_import_up_or_into_pipelines(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import numpy\n\ndef late():\n    from dali_cmo.training import losses\n")
    assert violations({**product_modules(), "dali_cmo.data.bad": bad}) == [
        "dali_cmo.data.bad:4 (layer 0) imports dali_cmo.training (layer 3)",
        "dali_cmo.data.bad:4 (layer 0) imports dali_cmo.training.losses (layer 3)"]
    bad.write_text("from pipelines.training import TrainConfig\n")
    assert violations({**product_modules(), "dali_cmo.training.bad": bad}) == [
        "dali_cmo.training.bad:1 (layer 3) imports pipelines.training (layer 2)"]
    bad.write_text("from dali_cmo.streams import make_streams\n")
    assert violations({**product_modules(), "dali_cmo.data.bad": bad}) == [
        "dali_cmo.data.bad:1 (layer 0) imports dali_cmo.streams (layer 1)"]
