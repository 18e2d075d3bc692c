"""The layers point one way: service → agents, ingress → pipeline, schemas.

The domain (``pipeline``, ``schemas``) loads no Kafka client and none of the packages above
it, and no product module takes part in an import cycle.  The import graph is grimp's, which
counts every import statement: module level, inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("pipeline", "schemas", "agents", "ingress", "service")
DOMAIN = ("pipeline", "schemas")
# What the domain must never load: the Kafka stack and every package that sits above it.
NOT_IN_DOMAIN = ("faust", "aiokafka", "agents", "ingress", "service")
# Highest first; a layer may import the ones below it, never one above.  The agents and the
# ingress are independent adapters: each names what it needs of the service as a Protocol.
LAYERS = ("service", grimp.Layer("agents", "ingress"), grimp.Layer(*DOMAIN, independent=False))

# Cycles known to exist and owned by other work; each entry is one strongly connected set of
# modules.  Remove an entry once its cycle is broken: the test fails while it is still listed.

# Imports every domain module in turn and reports, for each, the forbidden packages that
# appeared in sys.modules with it.  One fresh interpreter for the lot: sys.modules only
# grows, so a module that loads a forbidden package shows it right after its own import.
_PROBE = """
import importlib, json, pkgutil, sys
roots, forbidden = sys.argv[1].split(","), tuple(sys.argv[2].split(","))
loaded = lambda: {m.split(".")[0] for m in sys.modules} & set(forbidden)
names = []
for root in roots:
    package = importlib.import_module(root)
    names.append(root)
    names += [m.name for m in pkgutil.walk_packages(package.__path__, root + ".")]
found, before = {}, loaded()
for name in names:
    importlib.import_module(name)
    now = loaded()
    if now - before:
        found[name] = sorted(now - before)
    before = now
print(json.dumps({"modules": names, "found": found}))
"""


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PRODUCT, include_external_packages=True, cache_dir=None)


def test_importing_any_domain_module_loads_no_kafka_client_and_no_service_package() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, ",".join(DOMAIN), ",".join(NOT_IN_DOMAIN)],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert "pipeline.stages.upload" in report["modules"]  # the walk did reach the stages
    assert report["found"] == {}


def test_no_domain_module_imports_a_kafka_client_even_lazily(graph: grimp.ImportGraph) -> None:
    domain = {m for root in DOMAIN for m in graph.find_descendants(root) | {root}}
    offending = {
        f"{m} imports {imported}"
        for m in domain
        for imported in graph.find_modules_directly_imported_by(m)
        if imported.split(".")[0] in ("faust", "aiokafka")
    }
    assert offending == set()


def test_no_package_imports_a_layer_above_it(graph: grimp.ImportGraph) -> None:
    illegal = graph.find_illegal_dependencies_for_layers(layers=LAYERS)
    routes = sorted(
        f"{dep.importer} -> {dep.imported}: {sorted(r.heads)} {list(r.middle)} {sorted(r.tails)}"
        for dep in illegal
        for r in dep.routes
    )
    assert routes == []


def test_no_module_takes_part_in_an_import_cycle(graph: grimp.ImportGraph) -> None:
    product = {m for root in PRODUCT for m in graph.find_descendants(root) | {root}}
    # A module's strongly connected set: the modules it reaches that also reach it.
    cycles = {
        frozenset({m} | (graph.find_upstream_modules(m) & graph.find_downstream_modules(m)))
        for m in product
    }
    assert {c for c in cycles if len(c) > 1} == set()
