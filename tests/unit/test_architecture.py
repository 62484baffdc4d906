"""Dependencies run one way (ARCHITECTURE.md, lesson 10), checked on the source itself.

Every module under src/orderhub is parsed with `ast`; every import counts, including
those inside functions and under `if TYPE_CHECKING:` (a type is a dependency too).
The test fails on
  (a) an import cycle between modules,
  (b) an import cycle between packages, each package taken layer by layer (a package
      such as orders spans several layers: its domain, its use cases, its endpoints);
  (c) an import that runs upward through the layers below.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path

import orderhub

ROOT = Path(orderhub.__file__).parent

# -- the layer map ---------------------------------------------------------------------
# Lowest first. A module may import modules of its own layer or of the layers below it,
# never of a layer above. A module belongs to the first layer with a matching pattern:
# "a.b" matches the module a.b and, as "a.b.*", everything inside it.

LAYERS: list[tuple[str, list[str]]] = [
    # small shared plumbing: envelope and errors, money, clock, cursor, wire types
    ("kit", ["kit.*", "settings", "orderhub"]),
    # the pure model: orders and their events, deliveries, the counters' rules
    ("domain", ["orders.domain", "delivery.model", "delivery.pace", "monitoring.rollups"]),
    # adapters and wire types: the store (with its update loop), payment providers,
    # integration senders, schemas
    (
        "adapters",
        [
            "store.*",
            "payments.provider",
            "payments.stripe",
            "payments.sandbox",
            "payments.recording",
            "payments.outcomes",
            "payments.units",
            "payments.stripe_events",
            "delivery.integrations.*",
            "delivery.registry",
            "ratelimit.limiter",
            "ratelimit.clientip",
            "*.schemas",
        ],
    ),
    # use cases
    (
        "services",
        [
            "orders.service",
            "payments.service",
            "payments.webhook_service",
            "payments.reconcile",
            "delivery.service",
            "delivery.resync",
            "delivery.leasing",
            "monitoring.figures",
            "delivery.messages",
            "delivery.dispatch",
            "delivery.setup",
            "monitoring.error_log",
            "monitoring.alerts",
            "monitoring.health",
            "monitoring.prometheus",
            "monitoring.service",
            "auth.service",
            "auth.keys",
            "idempotency.service",
            "sandbox.service",
            "console.sessions",
        ],
    ),
    # the edges: HTTP (endpoints, middleware, typed dependencies) and the worker
    (
        "edges",
        [
            "*.endpoints",
            "http.*",
            "idempotency.http",
            "ratelimit.middleware",
            "delivery.worker",
            "console.*",
        ],
    ),
    # wiring and entry points
    ("entry", ["app", "bootstrap", "cli", "__main__"]),
]


def _matches(name: str, pattern: str) -> bool:
    if pattern.startswith("*."):
        return name.split(".")[-1] == pattern[2:]
    if pattern.endswith(".*"):
        stem = pattern[:-2]
        return name == stem or name.startswith(stem + ".")
    return name == pattern


def layer_of(module: str) -> int:
    """The layer index of `orderhub.x.y` (patterns are written without `orderhub.`). A
    package's `__init__` holds no code (test_package_inits_import_nothing): it is kit."""
    if module in package_inits():
        return 0
    name = module.removeprefix("orderhub.") if module != "orderhub" else "orderhub"
    for index, (_layer, patterns) in enumerate(LAYERS):
        if any(_matches(name, p) for p in patterns):
            return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else "orderhub"


# -- the import graph ------------------------------------------------------------------


def _module_name(path: Path) -> str:
    parts = ["orderhub", *path.relative_to(ROOT).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def package_inits() -> frozenset[str]:
    return frozenset(_module_name(path) for path in ROOT.rglob("__init__.py"))


@cache
def import_graph() -> dict[str, frozenset[str]]:
    sources = {
        _module_name(path): path
        for path in ROOT.rglob("*.py")
        if "migrations" not in path.relative_to(ROOT).parts
    }
    graph: dict[str, frozenset[str]] = {}
    for module, path in sources.items():
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: resolve against this module's package
                    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    target = f"{base}.{node.module}" if node.module else base
                else:
                    target = node.module or ""
                found.add(target)
                found.update(f"{target}.{alias.name}" for alias in node.names)
        graph[module] = frozenset(_resolve(name, sources) for name in found) - {None, module}  # type: ignore[operator]
    return graph


def _resolve(name: str, modules: Mapping[str, Path]) -> str | None:
    """The orderhub module an imported name lives in (`from a import b` may name either
    the module a.b or the attribute b of a)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One cycle of `graph`, as the list of its nodes (first repeated last), or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    color = dict.fromkeys(graph, WHITE)
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        color[node] = GREY
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if color.get(nxt, WHITE) == GREY:
                return [*path[path.index(nxt) :], nxt]
            if color.get(nxt, WHITE) == WHITE:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        color[node] = BLACK
        return None

    for start in sorted(graph):
        if color[start] == WHITE:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


# -- the rules -------------------------------------------------------------------------


def test_every_module_has_a_layer() -> None:
    for module in import_graph():
        layer_of(module)


def test_package_inits_import_nothing() -> None:
    for module in package_inits():
        if module in import_graph():
            assert import_graph()[module] == frozenset(), module


def test_no_import_cycle_between_modules() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_import_cycle_between_packages() -> None:
    packages: dict[str, set[str]] = {}
    for module, imports in import_graph().items():
        node = f"{package_of(module)}@{LAYERS[layer_of(module)][0]}"
        targets = packages.setdefault(node, set())
        for target in imports:
            other = f"{package_of(target)}@{LAYERS[layer_of(target)][0]}"
            if other != node:
                targets.add(other)
    cycle = find_cycle(packages)
    assert cycle is None, "package cycle: " + " -> ".join(cycle or [])


def test_no_upward_import() -> None:
    upward = [
        f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
        for module, imports in sorted(import_graph().items())
        for target in sorted(imports)
        if layer_of(target) > layer_of(module)
    ]
    assert upward == []


def test_kit_imports_only_kit() -> None:
    for module, imports in import_graph().items():
        if module.startswith("orderhub.kit"):
            assert all(t.startswith("orderhub.kit") for t in imports), (module, imports)


def test_domain_imports_only_kit_and_domain() -> None:
    below = {"kit", "domain"}
    for module, imports in import_graph().items():
        if LAYERS[layer_of(module)][0] == "domain":
            layers = {LAYERS[layer_of(t)][0] for t in imports}
            assert layers <= below, (module, imports)


def test_endpoints_never_see_the_container() -> None:
    for module, imports in import_graph().items():
        if module.endswith(".endpoints") or module.startswith("orderhub.http"):
            assert "orderhub.bootstrap" not in imports, module
            assert "orderhub.app" not in imports, module
        source = (ROOT / Path(*module.split(".")[1:])).with_suffix(".py")
        if module.endswith(".endpoints"):
            text = source.read_text()
            assert "app.state" not in text and "container" not in text, module


def test_the_graph_sees_type_checking_imports() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import orderhub.app\n"
    )
    assert any(isinstance(n, ast.Import) for n in ast.walk(tree))
    assert find_cycle({"a": ["b"], "b": ["a"]}) == ["a", "b", "a"]
    assert find_cycle({"a": ["b"], "b": []}) is None
