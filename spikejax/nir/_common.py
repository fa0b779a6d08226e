"""What export and import share: the supported node types and their fields, the defaults, NIRError."""
from __future__ import annotations

from spikejax.errors import UsageError

# The fields each supported node type needs and what each must hold: "finite" (real numbers), "time" (finite,
# > 0, >= dt), "threshold" (finite, > 0), "reset" (finite; 0 is checked apart), "count" (integers >= 1),
# "padding" (integers >= 0, or "same"/"valid"), "index" (integers), "shape" (integers >= 1), "delay" (seconds
# >= 0, whole numbers of steps of dt).
FIELDS = {
    "Input": {}, "Output": {},
    "Affine": {"weight": "finite", "bias": "finite"},
    "Linear": {"weight": "finite"},
    "Conv2d": {"weight": "finite", "bias": "finite", "stride": "count", "padding": "padding",
               "dilation": "count", "groups": "count"},
    "SumPool2d": {"kernel_size": "count", "stride": "count", "padding": "padding"},
    "AvgPool2d": {"kernel_size": "count", "stride": "count", "padding": "padding"},
    "Flatten": {"start_dim": "index", "end_dim": "index"},
    "Delay": {"delay": "delay"},
    "LIF": {"tau": "time", "r": "finite", "v_leak": "finite", "v_threshold": "threshold", "v_reset": "reset"},
    "CubaLIF": {"tau_syn": "time", "tau_mem": "time", "r": "finite", "w_in": "finite", "v_leak": "finite",
                "v_threshold": "threshold", "v_reset": "reset"},
    "IF": {"r": "finite", "v_threshold": "threshold", "v_reset": "reset"},
}
SUPPORTED = tuple(FIELDS)
NEURON_TYPES = ("LIF", "CubaLIF", "IF")
# Fields a .nir file stores per node (nir.read fills v_reset when absent); Input/Output store "shape".
_FILE_FIELDS = {kind: tuple(f for f in fields if f != "v_reset") for kind, fields in FIELDS.items()}
_FILE_FIELDS.update(Input=("shape",), Output=("shape",))
DEFAULT_DT = 1e-4  # snnTorch's importer assumes this step
DEFAULT_MAX_PARAMETERS = 100_000_000  # numbers in a graph (400 MB as float32) from_nir reads without being asked


class NIRError(UsageError):
    """A graph or model that spikejax cannot express in (or run from) NIR exactly, or a malformed graph; the
    message names the node and field. A ValueError; the commands exit with status 2 on it."""


def _nir():
    try:
        import nir
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("spikejax.nir needs the `nir` package: pip install 'spikejax[nir]'") from None
    return nir
