"""NIR (the Neuromorphic Intermediate Representation, package `nir` 1.0.x) export and import.

  graph = to_nir(model, dt=1e-4)            a SpikingMLP / SpikingConvNet / DelayedMLP -> nir.NIRGraph, with
                                            graph.metadata = {"dt": dt} (seconds)
  write(graph, "model.nir")                 the HDF5 file snnTorch, Norse, spyx, Sinabs, Rockpool, lava-dl read,
                                            written to a temporary file and renamed; a symlink there is refused
  net = from_nir(graph_or_path)             any supported graph (checked first) -> NIRNetwork, at the dt of the
                                            graph's metadata, else 1e-4 (snnTorch's); from_nir(..., dt=) overrides
  out = net(x)                              x [T, B, *input_type] (time-major) -> output spikes [T, B, ...];
                                            net(x, return_layers=True) -> (out, the spikes of the input and of
                                            every neuron node), like spikejax's models

How each neuron node is read (and why). The NIR spec (neuromorphs/NIR `docs/source/primitives.md`,
`nir/ir/neuron.py`) gives continuous-time equations and leaves discretisation to the backends:
  LIF      tau dv/dt = (v_leak - v) + r I        ->  v[t] = (1 - dt/tau) v[t-1] + (dt/tau) (v_leak + r I[t])
  CubaLIF  tau_syn di/dt = -i + w_in I            ->  i[t] = (1 - dt/tau_syn) i[t-1] + (dt/tau_syn) w_in I[t]
           tau_mem dv/dt = (v_leak - v) + r i     ->  v[t] = (1 - dt/tau_mem) v[t-1] + (dt/tau_mem) (v_leak + r i[t])
  IF       dv/dt = r I                            ->  v[t] = v[t-1] + r I[t]          (dt unused)
  spike    s[t] = H(v[t] - v_threshold), then v is set to v_reset
LIF and CubaLIF are forward Euler at step dt, as snnTorch, Norse and spyx import them (checked spike-exact
in tests/test_nir_interop.py). IF is read per step, with no dt, because that is how the hardware world
writes and reads it: Sinabs exports its IAF (v += I per step) as IF with r = 1 and imports IF as IAF with
r and dt ignored (sinabs/nir.py); Norse imports IF as IAFCell, whose step is v += I with dt "unused"
(norse/torch/functional/iaf.py; it warns when r != 1 and ignores r); snnTorch imports IF as Leaky with
beta = 1 since its 2026 fix (pull request #452, issue #416; beta was 0.9, then 0) and accepts r = 1 only.
Reading IF through dt (v += dt r I) makes those graphs silent: the NIR paper's `cnn_sinabs.nir` (r = 1)
then fires no spike at dt = 1e-4. spikejax keeps r as a per-step input gain, which is the common reading
for r = 1, the only value the others accept. (Sinabs resets its IAF by subtracting the threshold and
clips v at -v_threshold; spikejax, like Norse, applies NIR's v_reset = 0.)

spikejax's LIF (`neurons.lif`) is v[t] = beta v[t-1] + I[t] with s = H(v - threshold). Export therefore
writes, per spiking layer:
  LIF      tau = dt / (1 - beta), r = 1, v_leak = 0, v_threshold = threshold, v_reset = 0, and folds the
           gain tau/dt = 1/(1 - beta) into the weights and bias feeding it (Norse ignores r; this form is
           read the same everywhere). Not -dt/ln(beta): importers use Euler, not the exponential.
  CubaLIF  tau_syn = dt/(1 - alpha), w_in = tau_syn/dt, tau_mem = dt/(1 - beta), r = tau_mem/dt
  beta = 1 IF with r = 1 (v[t] = v[t-1] + I[t] exactly, whatever dt)
  LI       a non-spiking integrator output layer (`model.output = "integrator"`, u[t] = beta u[t-1] + I[t]):
           tau = dt / (1 - beta), r = 1, v_leak = 0, gain folded as for LIF; I (r = 1) where beta = 1.
           Export only: `from_nir` runs spiking graphs and refuses LI by name
and imports the inverse (beta = 1 - dt/tau, input gain dt r / tau, and dt v_leak / tau as a constant
current; IF: beta = 1, input gain r). NIR resets to v_reset: that is spikejax's `reset="zero"` only when
v_reset = 0. A neuron kind exports as its registered `nir_node` (`spikejax.neurons.register_kind`); a
kind without one is refused by name.

Learned neuron parameters (`model.neuron.learn_*`, per feature / conv channel or per layer) are written per
neuron: the node's arrays vary, and each neuron's gain is folded into its own row (output channel) of the
weights and bias. The recurrent model is not exported (NIR writes recurrence as a cycle).

Delays (model delay_mlp, `spikejax.delays`). The evaluated network shifts by the rounded delays
d = round(clip(delay, 0, kernel_size - 1)) steps: I_j[t] = sum_i W_ij x_i[t - d_ij] + b_j. NIR's Delay node
is y_c(t) = x_c(t - delay_c), one delay per channel in seconds; export writes delay_c = d dt (float64) and
folds the neuron gain into the weights as for the SpikingMLP. Per layer (k = layer index):
  per input channel (d [I])   source -> delay{k}: Delay [I] -> linear{k}: Affine [O, I] -> neuron
  per synapse (d [I, O])      one branch per delay value tau that occurs in the layer (V <= kernel_size of
                              them), each source -> delay{k}_d{tau}: Delay [I], every entry tau dt ->
                              linear{k}_d{tau}: Linear [O, I] holding W_ij where d_ij = tau and 0 elsewhere,
                              all branches into the neuron node, which sums them (NIR sums a node's inputs);
                              the first branch is an Affine carrying the bias.
A per-synapse layer thus has V I delay channels and V (I O + I) numbers, each synapse in exactly one branch.
Why branches rather than one channel per (input i, delay tau) pair (a 0/1 copy Linear [K, I] -> Delay [K]
-> Affine [O, K], K <= I kernel_size channels): NIR has no sparse or gather node, so that copy matrix is
dense, K I numbers, which dominates: digits_events (I = 2312, O = 8, kernel_size 3) is 62 thousand numbers
as branches and up to 16 million with the copy; a 700-input, 256-neuron layer with 25 taps is 4.5 million
against up to 16.7 million (one channel per synapse: 179,200 channels and 171 million). The pair form
has fewer delay channels (K against V I), which only matters where delay lines are scarcer than weights.
A delay of 0 steps stays 0 inside a Delay node; a branch (or a per-channel layer) whose delays are all 0
is written without a Delay node, so delays all 0 give exactly the SpikingMLP's graph. A per-synapse
expansion over `to_nir(..., max_parameters=)` (default 100 million, the importer's limit) is refused, with
the layer, V and the counts named; train with `model.delay.per="channel"` or raise the limit on both sides.
Import reads any Delay node as an exact shift (`delays.delay_line`) by delay/dt steps, which must be whole
within float rounding (1e-6 relative) and >= 0, else a NIRError naming the node, the value and dt; a
Delay of 0 is the identity. The dt matters here: import at the dt the graph was exported with (its
metadata holds it). NIR's neurons reset to v_reset, so a delayed model exports exactly only with
`model.neuron.reset="zero"`, like every other model (configs/timing_events_delay.py sets it). Peers: in
the versions of their sources read (snnTorch's import_from_nir node map, Norse's import_nir, spyx's NIR
import, where Delay is `pass`), none reads a Delay node, and none was installed here, so the delayed graph
is checked against a numpy simulation of NIR's definitions and spikejax's importer (tests/test_nir_delays.py),
not against another framework.

Layout: NIR is channels-first and per sample. Export turns conv kernels HWIO -> OIHW, permutes the rows
of the dense kernel after the flatten from spikejax's (h, w, c) order to NIR's (c, h, w), and writes the
2x2 average pool as a SumPool2d with the 1/4 folded into the next layer (AvgPool2d is read by snnTorch
only). The MLP's input is declared flat (input_type [F]): feed it [T, B, F]. NIR's `Flatten(start_dim=0)`
means the first dimension of a sample; snnTorch, Norse and nirtorch import it as `torch.nn.Flatten(0)`,
which also flattens the batch: give those frameworks one sample at a time, or replace the module.

Import checks every node before anything runs, and refuses with a `NIRError` naming the node (and the
field): a node type other than Input, Output, Affine, Linear, Conv2d, SumPool2d, AvgPool2d, Flatten, Delay,
LIF, CubaLIF, IF (the message lists them); a missing or non-numeric field; a non-finite value anywhere; tau,
tau_syn, tau_mem <= 0 or shorter than dt (a decay outside [0, 1]); a threshold <= 0; a v_reset other than
0; a delay < 0 or not a whole number of steps of dt; strides, kernel sizes, dilations, groups that are
not integers >= 1; parameter arrays whose shapes
disagree with each other or with the node's declared shape; a recurrent edge. A graph holding more than
`max_parameters` numbers (default 100 million) is refused before it is read: for a file the HDF5 dataset
shapes are summed without reading them (a file may declare a 45 GiB array in a few kB), so a graph you
trust that is larger needs `from_nir(path, max_parameters=...)`. Export refuses a subtractive reset (NIR has
none; train with `model.neuron.reset="zero"`, or pass `approximate=True` to accept the mismatch).
"""
from spikejax.nir._common import DEFAULT_DT, DEFAULT_MAX_PARAMETERS, FIELDS, SUPPORTED, NIRError
from spikejax.nir._export import NODE_WRITERS, to_nir, write
from spikejax.nir._import import NIRNetwork, from_nir

__all__ = ["DEFAULT_DT", "DEFAULT_MAX_PARAMETERS", "FIELDS", "NODE_WRITERS", "SUPPORTED", "NIRError", "NIRNetwork",
           "from_nir", "to_nir", "write"]
