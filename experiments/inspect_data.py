"""Dataset statistics and a picture of one sample's binned events over time.

  python -m experiments.inspect_data --dataset=digits_events --out=sample.png

Reads the dataset as --config (default configs/<--dataset>.py) and its --config.data.* fields bin it; flags
of training (--loss, --epochs, --workdir, ...) are refused (exit 2).
"""
if __name__ == "__main__":  # before the imports below, which take seconds
    import experiments

    experiments.exit_on_stop_signal()

import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

from experiments import common  # noqa: E402

common.NOT_USED.update({
    "workdir": "experiments.inspect_data reads a dataset, not a run; drop it (--out names the picture)",
    **{name: "experiments.inspect_data does not train; drop it"
       for name in ("loss", "window", "epochs", "batch_size", "seed", "max_steps")},
    **{name: "experiments.inspect_data runs in one process; drop it"
       for name in ("coordinator_address", "num_processes", "process_id", "distributed")}})

common.show_in_help("config", "dataset", "data_dir")

flags.DEFINE_enum("split", "train", ["train", "test"], "Split to inspect.")
flags.DEFINE_integer("index", 0, "Sample to draw.")
flags.DEFINE_string("out", None, "PNG path (default: <dataset>_<split>_<index>.png).")


def main(argv):
    from spikejax import build, plots
    from spikejax import config as config_lib
    from spikejax.errors import ConfigError

    config = common.build_config()
    config_lib.validate(config)
    FLAGS = common.FLAGS
    split = build.load_split(config, FLAGS.split)
    if not 0 <= FLAGS.index < len(split):
        raise ConfigError(f"--index={FLAGS.index}: the {FLAGS.split} split has samples 0..{len(split) - 1}")
    labels = np.asarray(split.labels)
    counts = np.bincount(labels, minlength=len(split.classes))
    sample = split.dense([FLAGS.index])[0]
    density = float(np.mean([split.dense(np.arange(i, min(i + 256, len(split))))
                             .mean() for i in range(0, min(len(split), 1024), 256)]))
    print(f"{config.dataset} {FLAGS.split}: {len(split)} samples, {len(split.classes)} classes")
    print("per class: " + ", ".join(f"{c}={n}" for c, n in zip(split.classes, counts)))
    print(f"events per sample: mean {split.events.mean():.0f}, min {split.events.min()}, max {split.events.max()}")
    print(f"duration: mean {split.duration_us.mean() / 1e3:.1f} ms, max {split.duration_us.max() / 1e3:.1f} ms")
    print(f"tensor per sample: [T={split.time_bins}, {'x'.join(map(str, split.frame_shape))}] of "
          f"{config.data.bin_width_us} us bins; input spike density {density:.4f}")
    print(f"cache: {split.path}")
    out = FLAGS.out or f"{config.dataset}_{FLAGS.split}_{FLAGS.index}.png"
    label = split.classes[labels[FLAGS.index]]
    plots.event_frames(sample, out, f"{config.dataset} {FLAGS.split}[{FLAGS.index}], label {label}",
                       bin_width_us=config.data.bin_width_us)
    print(f"wrote {out}")


if __name__ == "__main__":
    common.run(main)
