"""The import layering of ../shared/STYLE.md, read from the source (every import statement, also those
inside functions), so a new import that reaches up a layer fails here."""
import ast
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "spikejax")

CORE = {"spikejax.surrogate", "spikejax.lif_step", "spikejax.neurons", "spikejax.lif_pallas", "spikejax.lif_recurrent",
        "spikejax.losses", "spikejax.readout", "spikejax.errors"}
# What each layer may import from spikejax (besides itself); everything else in spikejax is above it.
ALLOWED = {
    "spikejax.errors": set(),
    "spikejax.surrogate": set(),
    "spikejax.lif_step": set(),
    "spikejax.neurons": {"spikejax.surrogate", "spikejax.lif_step", "spikejax.lif_pallas", "spikejax.lif_recurrent"},
    "spikejax.lif_pallas": {"spikejax.surrogate", "spikejax.lif_step"},
    "spikejax.lif_recurrent": {"spikejax.surrogate", "spikejax.lif_step"},
    "spikejax.losses": {"spikejax.readout"},  # the default readout of a registered loss
    "spikejax.readout": set(),
    "spikejax.models": CORE,
    "spikejax.data": {"spikejax.errors"},  # and its own submodules
    "spikejax.parallel": set(),
    "spikejax.plots": {"spikejax.errors"},
    "spikejax.loop": {"spikejax.errors"},
    "spikejax.config": CORE | {"spikejax.data"},
    "spikejax.checkpoint": {"spikejax.config", "spikejax.errors"},
    "spikejax.build": CORE | {"spikejax.config", "spikejax.data", "spikejax.models", "spikejax.parallel"},
    "spikejax.evaluate": CORE | {"spikejax.build", "spikejax.checkpoint", "spikejax.config", "spikejax.data",
                                 "spikejax.loop", "spikejax.parallel", "spikejax.plots"},
    "spikejax.train": CORE | {"spikejax.build", "spikejax.checkpoint", "spikejax.config", "spikejax.data",
                              "spikejax.evaluate", "spikejax.loop", "spikejax.parallel"},
    "spikejax.replicas": CORE | {"spikejax.build", "spikejax.evaluate", "spikejax.parallel", "spikejax.train"},
    "spikejax.stats": set(),
    "spikejax.nir": CORE | {"spikejax.models"},
    "spikejax.sweep": CORE | {"spikejax.build", "spikejax.checkpoint", "spikejax.config", "spikejax.data",
                              "spikejax.errors", "spikejax.evaluate", "spikejax.loop", "spikejax.parallel",
                              "spikejax.replicas", "spikejax.train"},
    "spikejax.comparison": CORE | {"spikejax.loop", "spikejax.plots", "spikejax.stats", "spikejax.sweep"},
    "spikejax": CORE,
}
THIRD_PARTY_CORE = {"jax", "numpy"}  # the only outside imports of the core
# configs/ and experiments/ are repository folders, not installed with spikejax
NEVER_IN_LIBRARY = {"absl", "configs", "experiments", "tensorflow", "clu"}


def _modules():
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                module = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                yield module.removesuffix(".__init__"), path


def _imports(path, module):
    tree = ast.parse(open(path).read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package
                base = module.rsplit(".", node.level)[0]
                names.add(f"{base}.{node.module}" if node.module else base)
            else:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _layer(module):
    for package in ("spikejax.data", "spikejax.losses"):
        if module == package or module.startswith(package + "."):
            return package
    return module


def _spikejax_layers(names):
    """spikejax modules named by the imports, as layers (spikejax.data.x -> spikejax.data)."""
    found = set()
    modules = {m for m, _ in _modules()}
    for name in names:
        if not name.startswith("spikejax"):
            continue
        while name not in modules and "." in name:  # `from spikejax import losses` names spikejax.losses
            name = name.rsplit(".", 1)[0]
        found.add(_layer(name))
    return found


@pytest.mark.parametrize("module,path", sorted(_modules()))
def test_imports_point_down_the_layers(module, path):
    layer = _layer(module)
    assert layer in ALLOWED, f"{module} is not placed in a layer of tests/test_layering.py"
    used = _spikejax_layers(_imports(path, module)) - {layer, "spikejax"}
    assert used <= ALLOWED[layer], f"{module} imports {sorted(used - ALLOWED[layer])}, above its layer"
    outside = {name.split(".")[0] for name in _imports(path, module) if not name.startswith("spikejax")}
    assert not outside & NEVER_IN_LIBRARY, f"{module} imports {sorted(outside & NEVER_IN_LIBRARY)}"
    if layer in CORE:
        third_party = outside - set(sys.stdlib_module_names) - {"__future__"}
        assert third_party <= THIRD_PARTY_CORE, f"core module {module} imports {sorted(third_party)}"


def test_no_import_cycle_between_neurons_and_the_kernels():
    kernels = _spikejax_layers(_imports(os.path.join(PACKAGE, "lif_pallas.py"), "spikejax.lif_pallas"))
    assert "spikejax.neurons" not in kernels
