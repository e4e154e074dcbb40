"""The code's shape is a contract: the asset graph is the map of the packages.

* every asset group has one core package ``core/<group>/`` and one Dagster module
  ``defs/<group>.py``, and every asset of that module belongs to that group;
* the domain (``core/``) and the presentation (``report/``) never import Dagster;
* nothing imports Dagster's internals (``dagster._*``, which any release may change);
* each core package's ``__init__`` exports names that its modules define;
* no module is longer than 400 lines.
"""

import ast
import importlib
import inspect
from pathlib import Path

import dagster as dg
import pytest

from allocator_pipeline.definitions import STAGE_MODULES, defs

PACKAGE = Path(__file__).resolve().parents[1] / "allocator_pipeline"
CORE_PACKAGES = sorted(p.name for p in (PACKAGE / "core").iterdir() if (p / "__init__.py").is_file())


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_every_asset_group_is_one_core_package_and_one_defs_module():
    graph = defs.resolve_asset_graph()
    groups = {graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert groups == {m.__name__.rsplit(".", 1)[1] for m in STAGE_MODULES}
    assert groups <= set(CORE_PACKAGES), groups - set(CORE_PACKAGES)
    for module in STAGE_MODULES:
        group = module.__name__.rsplit(".", 1)[1]
        assets = [
            v
            for v in vars(module).values()
            if isinstance(v, dg.AssetsDefinition) and not isinstance(v, dg.AssetChecksDefinition)
        ]
        assert assets, f"{module.__name__} defines no asset"
        for asset in assets:
            assert set(asset.group_names_by_key.values()) == {group}, (module.__name__, asset.keys)


@pytest.mark.parametrize("folder", ["core", "report"])
def test_domain_and_presentation_never_import_dagster(folder):
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in (PACKAGE / folder).rglob("*.py")
        if any(name == "dagster" or name.startswith("dagster") for name in imported_modules(path))
    ]
    assert offenders == []


def dagster_internal(module: str) -> bool:
    """A private module of a Dagster package (``dagster._core...``, ``dagster_graphql._...``)."""
    package, *rest = module.split(".")
    return package.startswith("dagster") and any(part.startswith("_") for part in rest)


def test_the_package_uses_dagsters_public_interfaces_only():
    imports = {str(path.relative_to(PACKAGE)): imported_modules(path) for path in PACKAGE.rglob("*.py")}
    internal = {path: sorted(filter(dagster_internal, names)) for path, names in imports.items()}
    assert {path: names for path, names in internal.items() if names} == {}


@pytest.mark.parametrize("package", CORE_PACKAGES)
def test_core_package_exports_what_its_modules_define(package):
    module = importlib.import_module(f"allocator_pipeline.core.{package}")
    exported = getattr(module, "__all__", None)
    assert exported, f"core/{package}/__init__.py has no __all__"
    for name in exported:
        value = getattr(module, name)
        if inspect.isfunction(value) or inspect.isclass(value):
            assert value.__module__.startswith(f"allocator_pipeline.core.{package}."), (name, value.__module__)


def test_no_module_is_longer_than_400_lines():
    long = {
        str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400
    }
    assert long == {}
