"""The distribution: the wheel holds the one package `spikejax` and declares its extras; the core imports,
reads digits_events and trains without the optional packages, and a feature that needs one names its extra;
one version everywhere (package, installed metadata, wheel, CITATION.cff, CHANGELOG.md)."""
import email.parser
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile

import pytest
import yaml  # a dependency of flax, ml-collections and orbax
from packaging.requirements import Requirement
from packaging.version import Version

import spikejax

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORE = {"jax", "numpy", "flax", "optax", "orbax-checkpoint", "ml-collections", "absl-py", "scikit-learn", "scipy",
        "tensorboardX"}
EXTRAS = {"datasets", "plots", "nir", "tensorboard", "docs", "interop", "test", "bench"}
# What a subprocess acts as not installed: every optional package of the extras
OPTIONAL = ("tonic", "h5py", "matplotlib", "nir", "torch", "snntorch", "norse", "neurobench", "spyx")
BLOCK = textwrap.dedent(f"""
    import importlib.abc, sys
    class _NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {OPTIONAL!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
    sys.meta_path.insert(0, _NotInstalled())
""")


def _python(code, *args, timeout=300):
    """Runs `code` after BLOCK in a fresh interpreter at the repository root."""
    return subprocess.run([sys.executable, "-c", BLOCK + textwrap.dedent(code), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel built offline from a copy of the checkout (configs/ and experiments/ included, so that a
    setup.py that packaged them would show), leaving no build/ or egg-info in the repository."""
    import setuptools

    if Version(setuptools.__version__) < Version("70.1"):
        pytest.fail(f"setuptools {setuptools.__version__} cannot build a wheel without the `wheel` package; the "
                    "test extra brings setuptools>=70.1: pip install -e '.[test]'")
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    source.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md", "LICENSE", "spikejax", "experiments", "configs",
                 "benchmarks", "tests"):
        path = os.path.join(ROOT, name)
        if os.path.isdir(path):
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "results"))
        else:
            shutil.copy(path, source / name)
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                          "-q", "-w", str(tmp / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    (path,) = (tmp / "dist").glob("spikejax-*.whl")
    return zipfile.ZipFile(path)


def _dist_info(wheel, name):
    (path,) = [p for p in wheel.namelist() if p.endswith(f".dist-info/{name}")]
    return wheel.read(path).decode()


def test_wheel_installs_one_top_level_package(wheel):
    record = [line.split(",")[0] for line in _dist_info(wheel, "RECORD").splitlines() if line]
    top = {path.split("/")[0] for path in record if ".dist-info/" not in path}
    assert top == {"spikejax"}
    assert {"spikejax/__init__.py", "spikejax/data/__init__.py", "spikejax/data/digits_events.py"} <= set(record)
    if any(p.endswith(".dist-info/top_level.txt") for p in wheel.namelist()):
        assert _dist_info(wheel, "top_level.txt").split() == ["spikejax"]


def test_wheel_metadata_declares_version_license_python_and_extras(wheel):
    metadata = email.parser.HeaderParser().parsestr(_dist_info(wheel, "METADATA"))
    assert metadata["Version"] == spikejax.__version__
    assert (metadata["License-Expression"] or metadata["License"]) == "Apache-2.0"
    assert any(p.endswith("LICENSE") and ".dist-info/" in p for p in wheel.namelist())
    assert metadata["Requires-Python"] == ">=3.11"
    assert set(metadata.get_all("Provides-Extra")) == EXTRAS
    requirements = [Requirement(line) for line in metadata.get_all("Requires-Dist")]
    core = {r.name for r in requirements if r.marker is None}
    assert core == CORE
    extra = {name: {r.name for r in requirements if r.marker and r.marker.evaluate({"extra": name})}
             for name in EXTRAS}
    assert extra["datasets"] == {"tonic", "h5py"} and extra["plots"] == {"matplotlib"}
    assert extra["tensorboard"] == {"tensorboard"} and "tensorboard" not in extra["test"]  # a viewer, not tested
    assert extra["docs"] == {"mkdocs", "mkdocs-material", "mkdocstrings-python"}
    assert extra["test"] >= ({"pytest", "setuptools"} | extra["datasets"] | extra["plots"] | extra["nir"]
                             | extra["docs"])
    assert {r.name: str(r.specifier) for r in requirements
            if r.marker is not None and r.marker.evaluate({"extra": "interop"})}["torch"] == "==2.13.0"
    for r in requirements:  # lower bounds only; the interop extra pins what its checks were run with
        interop_only = r.marker is not None and r.marker.evaluate({"extra": "interop"})
        assert interop_only or {s.operator for s in r.specifier} <= {">="}, f"{r} is more than a lower bound"


def test_core_works_without_the_optional_packages(tmp_path):
    """With every optional package unimportable: the core and data import, digits_events yields a sample,
    and NMNIST, SHD and the plots each stop with one line naming their extra."""
    out = _python("""
        import json, sys
        try:
            import tonic
            sys.exit("the blocker let tonic through")
        except ModuleNotFoundError:
            pass
        import spikejax, spikejax.losses, spikejax.neurons, spikejax.readout
        from spikejax import data, errors, plots
        events, label = next(data.get_info("digits_events").samples(None, "test"))
        messages = {}
        for name in ("nmnist", "shd"):
            try:
                data.load(name, "train", data_dir=sys.argv[1])
            except errors.MissingDependencyError as error:
                messages[name] = str(error)
        try:
            plots.accuracy_over_time({}, sys.argv[1] + "/a.png")
        except errors.MissingDependencyError as error:
            messages["plots"] = str(error)
        print(json.dumps({"datasets": sorted(data.DATASETS), "events": len(events), "label": int(label),
                          "messages": messages}))
    """, str(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["datasets"] == ["digits_events", "dvs_gesture", "nmnist", "ntidigits18", "shd", "timing_events"]
    assert result["events"] > 0 and 0 <= result["label"] < 10
    assert set(result["messages"]) == {"nmnist", "shd", "plots"}
    for name, extra in (("nmnist", "datasets"), ("shd", "datasets"), ("plots", "plots")):
        message = result["messages"][name]
        assert "\n" not in message and f'pip install "spikejax[{extra}]"' in message, message
    assert "the nmnist dataset needs the optional package tonic" in result["messages"]["nmnist"]


def test_missing_extra_is_one_line_and_exit_2_from_the_command_line(tmp_path):
    out = _python("""
        import runpy, sys
        sys.argv = ["experiments.train", *sys.argv[1:]]
        runpy.run_module("experiments.train", run_name="__main__", alter_sys=True)
    """, "--dataset=nmnist", f"--data_dir={tmp_path}", f"--workdir={tmp_path / 'run'}")
    lines = [line for line in out.stderr.splitlines() if line.strip() and not line.startswith("WARNING: All log")]
    assert out.returncode == 2, out.stdout + out.stderr
    assert len(lines) == 1 and 'pip install "spikejax[datasets]"' in lines[0], out.stderr


@pytest.mark.slow
def test_default_training_runs_without_the_optional_packages(digits_data_dir, tmp_path):
    """`python -m experiments.train` on a core install: trains, writes eval.json, skips the PNGs with a note."""
    workdir = tmp_path / "run"
    out = _python("""
        import runpy, sys
        sys.argv = ["experiments.train", *sys.argv[1:]]
        runpy.run_module("experiments.train", run_name="__main__", alter_sys=True)
    """, "--config.model.hidden=(32,)", "--max_steps=2", f"--data_dir={digits_data_dir}", f"--workdir={workdir}",
        timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.load(open(workdir / "eval.json"))["num_examples"] == 360
    assert 'plots skipped: spikejax.plots needs the optional package matplotlib' in out.stdout
    assert not list(workdir.glob("*.png"))


def test_version_is_defined_once_and_matches_the_installed_metadata():
    assert str(Version(spikejax.__version__)) == spikejax.__version__  # PEP 440, in its canonical form
    try:
        distribution = importlib.metadata.distribution("spikejax")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("spikejax is not installed (pip install -e '.[test]')")
    url = json.loads(distribution.read_text("direct_url.json") or "{}").get("url", "")
    if url.startswith("file://") and os.path.realpath(url.removeprefix("file://")) != os.path.realpath(ROOT):
        pytest.skip(f"the installed spikejax comes from {url}, not from this checkout")
    assert distribution.version == spikejax.__version__, "stale install metadata: pip install -e '.[test]'"


def test_citation_cff_names_this_version_and_the_paper():
    citation = yaml.safe_load(open(os.path.join(ROOT, "CITATION.cff")))
    assert citation["cff-version"] == "1.2.0"
    assert {"message", "title", "authors"} <= set(citation)
    assert str(citation["version"]) == spikejax.__version__
    assert citation["license"] == "Apache-2.0"
    (paper,) = citation["references"]
    assert paper["title"] == "Spikemax: Spike-based Loss Methods for Classification"
    assert [a["family-names"] for a in paper["authors"]] == ["Shrestha", "Zhu", "Sun"]
    assert paper["year"] == 2022 and "IJCNN" in paper["conference"]["name"]


def test_changelog_has_a_section_for_this_version():
    changelog = open(os.path.join(ROOT, "CHANGELOG.md")).read()
    version = Version(spikejax.__version__)
    heading = "## [Unreleased]" if version.is_devrelease else f"## [{version}]"
    assert heading in changelog
    assert "## [0.1.0]" in changelog
