"""spikejax: spiking neural networks in JAX, trained with spike-based losses (Spikemax, IJCNN 2022)."""
from setuptools import find_packages, setup

setup(
    name="spikejax",
    version="0.1.0",
    description="Spiking neural networks in JAX with spike-based classification losses (spikemax).",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["spikejax", "spikejax.*", "experiments", "configs"]),
    install_requires=[
        # The core (surrogate, neurons, losses, readout) needs only jax and numpy.
        # Tested at both ends: jax 0.7.1 + flax 0.12.0, and jax 0.10.2 + flax 0.12.8.
        "jax>=0.7.1",            # jax.shard_map, make_array_from_process_local_data
        "numpy>=1.26",
        # Models, training, data.
        "flax>=0.12.0",          # flax.nnx split/merge, nnx.List
        "optax>=0.2.4",
        "orbax-checkpoint>=0.11.0",
        "ml-collections>=1.0.0",  # config_flags: --config=configs/x.py --config.a.b=v
        "absl-py>=2.1",
        "tonic>=1.5",            # dataset classes for NMNIST, DVSGesture, NTIDIGITS18
        "scikit-learn>=1.3",     # the bundled 8x8 digits behind digits_events
        "h5py>=3.9",
        "tensorboardX>=2.6",     # TensorBoard event files without TensorFlow
        "matplotlib>=3.7",       # PNG plots (inspect_data, evaluate, compare_losses)
        "scipy>=1.11",           # t intervals and paired tests of the loss comparison (jax requires scipy too)
    ],
    extras_require={
        "test": ["pytest>=7.4", "nir>=1.0.8"],
        "nir": ["nir>=1.0.8"],  # spikejax.nir, experiments.export
        # cross-framework NIR checks (pytest -m interop): exact versions, as their importers' conventions
        # (dt, r, resets, Flatten) and NeuroBench's counting change between releases; torch from the CPU index
        "interop": ["nir==1.0.8", "snntorch==1.0.0", "norse==1.1.0", "neurobench==2.3.0", "torch>=2.1"],
        "bench": ["torch>=2.1", "snntorch>=0.9", "spyx>=1.0"],
    },
)
