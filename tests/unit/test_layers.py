"""Layering, for every module of the package: each layer imports only the layers below it.

Layers, bottom up: the core (``fullstory_async._*``), the bulk wing (``_bulk/``), the
receiving side, the inbox console (``console/``, over the receiving side), the OpenTelemetry
adapter (``otel``, on the hooks of both sides), the fake
server (``testing/``), the public facade
(``fullstory_async/__init__.py``), the command line (``cli/``, thin over the facade) and
``__main__``. The bulk wing is built on
the core's public operations, never the other way: no core module imports ``_bulk/`` at
module level, and the one hand-off (``Webhooks._provisioner``) imports it on first use.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import fullstory_async

PACKAGE = Path(fullstory_async.__file__).parent
ORDER = ("core", "bulk", "receiving", "console", "otel", "testing", "facade", "cli", "main")
ABOVE_BULK = {"fullstory_async._client", "fullstory_async._webhooks", "fullstory_async._raw"}
SHARED_DOWNWARDS = {"fullstory_async.cli._types"}  # standard library only: the fake server's options use it
CORE_TO_BULK_HAND_OFF = {("fullstory_async._webhooks", "fullstory_async._bulk.provision")}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> str:
    """Return the layer of a module of the package."""
    parts = module.split(".")
    if len(parts) == 1:
        return "facade"
    if parts[1] == "__main__":
        return "main"
    if parts[1] == "_bulk":
        return "bulk"
    if parts[1] in ("receiving", "console", "otel", "testing", "cli"):
        return parts[1]
    assert parts[1].startswith("_"), module
    return "core"


def imports(path: Path) -> dict[str, set[str]]:
    """Return the package modules ``path`` imports: ``module`` level, ``typing`` only, or ``lazy`` (in a function)."""
    found: dict[str, set[str]] = {"module": set(), "typing": set(), "lazy": set()}

    def visit(node: ast.AST, kind: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child, "lazy")
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for statement in child.body:
                    visit(ast.Module([statement], []), "typing")
            elif isinstance(child, ast.ImportFrom) and child.module:
                names = [child.module]
                if child.module == "fullstory_async":  # a submodule (_converter), else a name of the facade
                    names = [
                        f"fullstory_async.{a.name}" if f"fullstory_async.{a.name}" in MODULES else child.module
                        for a in child.names
                    ]
                found[kind].update(name for name in names if name.startswith("fullstory_async"))
            elif isinstance(child, ast.Import):
                found[kind].update(a.name for a in child.names if a.name.startswith("fullstory_async"))
            else:
                visit(child, kind)

    visit(ast.parse(path.read_text()), "module")
    return found


def test_every_module_has_a_layer() -> None:
    """The rules below cover every module: each one is in a known layer."""
    assert len(MODULES) > 50
    assert {layer(module) for module in MODULES} == set(ORDER)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_its_layer_and_those_below_at_module_level(module: str) -> None:
    """No module imports a module of a layer above its own when it is imported."""
    rank = ORDER.index(layer(module))
    above = {
        name
        for name in imports(MODULES[module])["module"]
        if ORDER.index(layer(name)) > rank and name not in SHARED_DOWNWARDS
    }
    assert above == set()


@pytest.mark.parametrize("module", sorted(name for name in MODULES if layer(name) == "bulk"))
def test_the_bulk_wing_never_names_the_client_or_webhooks(module: str) -> None:
    """The bulk wing is typed against `Operations`: no import of _client, _webhooks or _raw, even for typing."""
    every = set().union(*imports(MODULES[module]).values())
    assert every & ABOVE_BULK == set()


def test_the_core_hands_off_to_the_bulk_wing_in_one_place() -> None:
    """The core imports the bulk wing only lazily, and only in Webhooks._provisioner."""
    lazy = {
        (module, name)
        for module in MODULES
        if layer(module) == "core"
        for name in imports(MODULES[module])["lazy"]
        if layer(name) == "bulk"
    }
    assert lazy == CORE_TO_BULK_HAND_OFF


def test_webhooks_implements_the_bulk_operations_protocol() -> None:
    """Every member of the Operations protocol exists on Webhooks; Webhooks shows no budget or retry policy."""
    from fullstory_async._bulk.operations import Operations
    from fullstory_async._webhooks import Webhooks

    members = {name for name in vars(Operations) if not name.startswith("__")} - {"_is_protocol", "_abc_impl"}
    assert members
    assert {name for name in members if not hasattr(Webhooks, name)} == set()
    assert not {"budget", "retry_policy", "governor"} & set(dir(Webhooks))
