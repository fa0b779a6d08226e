"""spikejax: spiking neural networks in JAX trained with spike-based losses.

Importing this package loads only the jax/numpy core (surrogate, neurons, losses, readout); models,
data and training live in submodules that are imported on demand.
"""
from spikejax import losses, neurons, readout, surrogate

__version__ = "0.2.0.dev0"  # defined here only: setup.py reads it, tests/test_install.py checks CITATION.cff
__all__ = ["losses", "neurons", "readout", "surrogate"]
