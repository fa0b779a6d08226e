"""spikejax: spiking neural networks in JAX, trained with spike-based losses (Spikemax, IJCNN 2022).

The distribution installs one package, `spikejax`; `experiments/` and `configs/` are the repository's folders,
run from the checkout (`python -m experiments.train`).
"""
import ast
import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def read_version() -> str:
    """`__version__` from spikejax/__init__.py, read without importing spikejax (and jax)."""
    with open(os.path.join(HERE, "spikejax", "__init__.py"), encoding="utf-8") as f:
        for node in ast.parse(f.read()).body:
            if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["__version__"]:
                return ast.literal_eval(node.value)
    raise RuntimeError("spikejax/__init__.py defines no __version__")


EXTRAS = {
    # the downloadable datasets: NMNIST, DVS Gesture, N-TIDIGITS18, SHD (tonic pulls librosa and numba)
    "datasets": ["tonic>=1.5", "h5py>=3.9"],
    "plots": ["matplotlib>=3.7"],  # PNG plots (evaluate, compare_losses, inspect_data); skipped without it
    "nir": ["nir>=1.0.8"],  # spikejax.nir, experiments.export
    # to view a run's TensorBoard event files (`tensorboard --logdir WORKDIR`); spikejax writes them without it
    "tensorboard": ["tensorboard>=2.14"],
    # the documentation site (mkdocs.yml; tests/test_docs.py builds it in strict mode): mkdocs-material
    # requires mkdocs < 2 itself
    "docs": ["mkdocs>=1.6.1", "mkdocs-material>=9.8", "mkdocstrings-python>=2.0"],
    # cross-framework NIR checks (pytest -m interop): exact versions, as their importers' conventions
    # (dt, r, resets, Flatten) and NeuroBench's counting change between releases. torch 2.13.0 is the
    # version the interop tests were run with; from the default index pip installs its CUDA build (large,
    # runs on CPU too), or add --index-url https://download.pytorch.org/whl/cpu for the CPU-only build
    "interop": ["nir==1.0.8", "snntorch==1.0.0", "norse==1.1.0", "neurobench==2.3.0", "torch==2.13.0"],
    "bench": ["torch>=2.1", "snntorch>=0.9", "spyx>=1.0"],
}
# everything the whole test suite needs, the docs build included (the interop tests skip without the interop
# extra); setuptools>=70.1 builds wheels without the `wheel` package, offline, for tests/test_install.py;
# pytest-xdist runs the suite on 2 workers (the README's test command), filelock lets jax's persistent
# compilation cache, which tests/conftest.py turns on, lock its entries between processes
EXTRAS["test"] = ["pytest>=7.4", "pytest-xdist>=3.5", "filelock>=3.12", "setuptools>=70.1", *EXTRAS["datasets"],
                  *EXTRAS["plots"], *EXTRAS["nir"],
                  *EXTRAS["docs"]]

setup(
    name="spikejax",
    version=read_version(),
    description="Spiking neural networks in JAX with spike-based classification losses (spikemax).",
    long_description=open(os.path.join(HERE, "README.md"), encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    license_files=["LICENSE"],
    python_requires=">=3.11",
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
    packages=find_packages(include=["spikejax", "spikejax.*"]),
    install_requires=[
        # The core (surrogate, neurons, losses, readout) needs only jax and numpy.
        # Tested at both ends: jax 0.7.1 + flax 0.12.0, and jax 0.10.2 + flax 0.12.8.
        # CUDA or TPU: install jax for the accelerator first (README, 'Install').
        "jax>=0.7.1",            # jax.shard_map, make_array_from_process_local_data
        "numpy>=1.26",
        # Models, training, checkpoints, configs: the training program on the embedded digits_events.
        "flax>=0.12.0",          # flax.nnx split/merge, nnx.List
        "optax>=0.2.4",
        "orbax-checkpoint>=0.11.0",
        "ml-collections>=1.0.0",  # config_flags: --config=configs/x.py --config.a.b=v
        "absl-py>=2.1",
        "scikit-learn>=1.3",     # the bundled 8x8 digits behind digits_events (the default dataset)
        "scipy>=1.11",           # digits_events' zoom; the comparison's t intervals and tests (jax needs it too)
        "tensorboardX>=2.6",     # every run's TensorBoard event files, without TensorFlow (small: protobuf only)
    ],
    extras_require=EXTRAS,
)
