"""The import layering of ../shared/STYLE.md, read from the source (every import statement, also those
inside functions), so a new import that reaches up a layer fails here."""
import ast
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "spikejax")

CORE = {"spikejax.surrogate", "spikejax.neurons", "spikejax.losses", "spikejax.readout", "spikejax.errors",
        "spikejax.delays"}
# What each layer may import from spikejax (besides itself); everything else in spikejax is above it.
ALLOWED = {
    "spikejax.errors": set(),
    "spikejax.surrogate": set(),
    "spikejax.neurons": {"spikejax.surrogate"},
    "spikejax.losses": {"spikejax.readout"},  # the default readout of a registered loss
    "spikejax.readout": set(),
    "spikejax.delays": set(),
    "spikejax.models": CORE,
    "spikejax.data": {"spikejax.errors"},  # and its own submodules
    "spikejax.parallel": set(),
    "spikejax.augment": set(),  # jax only: training inputs' augmentation, run inside the train step
    "spikejax.files": {"spikejax.errors"},
    "spikejax.plots": {"spikejax.errors", "spikejax.files"},
    "spikejax.workdir": {"spikejax.errors", "spikejax.files"},
    "spikejax.metric_writer": {"spikejax.files"},
    "spikejax.config": CORE | {"spikejax.data", "spikejax.models"},
    "spikejax.checkpoint": {"spikejax.config", "spikejax.errors"},
    "spikejax.build": CORE | {"spikejax.augment", "spikejax.config", "spikejax.data", "spikejax.models",
                              "spikejax.parallel"},
    "spikejax.evaluate": CORE | {"spikejax.build", "spikejax.config", "spikejax.data", "spikejax.parallel"},
    # which PNGs a run and a comparison have, drawn from which records
    "spikejax.figures": CORE | {"spikejax.build", "spikejax.plots"},
    "spikejax.runs": CORE | {"spikejax.build", "spikejax.checkpoint", "spikejax.config", "spikejax.data",
                             "spikejax.evaluate", "spikejax.figures", "spikejax.parallel", "spikejax.plots",
                             "spikejax.workdir"},
    "spikejax.step": CORE | {"spikejax.augment", "spikejax.build", "spikejax.checkpoint", "spikejax.parallel"},
    "spikejax.loop": CORE | {"spikejax.checkpoint", "spikejax.data", "spikejax.metric_writer", "spikejax.parallel",
                             "spikejax.workdir"},
    # the programs: the single run and the comparison stand side by side on the layers above
    "spikejax.train": CORE | {"spikejax.build", "spikejax.checkpoint", "spikejax.config", "spikejax.loop",
                              "spikejax.parallel", "spikejax.runs", "spikejax.step", "spikejax.workdir"},
    "spikejax.compare": CORE | {"spikejax.build", "spikejax.checkpoint", "spikejax.config", "spikejax.evaluate",
                                "spikejax.figures", "spikejax.files", "spikejax.loop", "spikejax.parallel",
                                "spikejax.plots", "spikejax.step", "spikejax.workdir"},
    # the plots of any finished workdir, a run's or a comparison's (from their files: it imports neither program)
    "spikejax.replot": CORE | {"spikejax.build", "spikejax.figures", "spikejax.plots", "spikejax.runs",
                               "spikejax.workdir"},
    "spikejax.nir": CORE | {"spikejax.models"},
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
    for package in ("spikejax.data", "spikejax.losses", "spikejax.compare", "spikejax.neurons", "spikejax.nir",
                    "spikejax.models"):
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


def test_the_kernels_do_not_import_the_public_neurons_module():
    """The private implementations (step, fused, pallas, recurrent) import only each other and the
    surrogate, never the package's public functions (as jax's cudnn attention never imports back)."""
    folder = os.path.join(PACKAGE, "neurons")
    for name in ("_step", "_fused", "_pallas", "_recurrent"):
        imports = _imports(os.path.join(folder, f"{name}.py"), f"spikejax.neurons.{name}")
        inside = {i for i in imports if i.startswith("spikejax.neurons")}
        allowed = ("spikejax.neurons._step", "spikejax.neurons._step.")  # the module and its names
        assert all(i == "spikejax.neurons" or i.startswith(allowed) for i in inside), (name, inside)


def test_the_single_run_and_the_comparison_stand_side_by_side():
    """Neither program imports the other: both stand on the loop, the step, the builders and evaluation."""
    train = _spikejax_layers(_imports(os.path.join(PACKAGE, "train.py"), "spikejax.train"))
    compare = set().union(*(_spikejax_layers(_imports(path, module)) for module, path in _modules()
                            if _layer(module) == "spikejax.compare"))
    assert "spikejax.compare" not in train and "spikejax.train" not in compare
    assert {"spikejax.loop", "spikejax.step"} <= train & compare


def test_no_import_cycle():
    graph = {}
    for module, path in _modules():
        graph.setdefault(_layer(module), set()).update(_spikejax_layers(_imports(path, module)) - {_layer(module)})
    graph.pop("spikejax", None)
    visiting, done = set(), set()

    def visit(node, trail):
        assert node not in visiting, f"import cycle: {' -> '.join(trail + [node])}"
        if node in done:
            return
        visiting.add(node)
        for nxt in graph.get(node, ()):
            if nxt != "spikejax":
                visit(nxt, trail + [node])
        visiting.discard(node)
        done.add(node)

    for node in graph:
        visit(node, [])


def test_no_module_is_over_about_four_hundred_lines():
    sizes = {module: sum(1 for _ in open(path)) for module, path in _modules()}
    # "about 400": the largest (models, the public neurons) sit just above it
    assert not {m: n for m, n in sizes.items() if n > 440}, "split the module by job"
