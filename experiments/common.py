"""What the entry points share: flags, the one path from flags to a config, and `run`, which turns
spikejax's errors into one line and an exit code.

Config path: `--config=FILE` if given, else `configs/<--dataset>.py` (default digits_events), so
`--config.a.b=v` works with or without `--config`. The short flags (--loss, --epochs, ...) are applied on
top. `--dataset` that disagrees with the config file's dataset is refused, not silently mixed.

A flag defined here that a program does not use (NOT_USED, set by the program) is refused with one line
naming what to use instead, never ignored.

Exit codes: 0 done; 2 a usage or config mistake (one line on stderr); 1 the run could not go on (one
line); 128+n stopped by signal n (SIGINT 130, SIGTERM 143): inside the training loop after saving, anywhere
else (start-up, data loading, compilation, evaluation) at once with one line, temporary files removed by
the code that made them. `--verbosity=1` (or SPIKEJAX_TRACEBACK=1) shows tracebacks.
"""
from __future__ import annotations

import importlib
import os
import re
import signal
import sys
import traceback

import ml_collections
from absl import app, flags
from ml_collections import config_flags

import configs
from spikejax import losses
from spikejax.data import DATASETS
from spikejax.errors import ConfigError, SpikejaxError, is_disk_full

config_flags.DEFINE_config_file(
    "config", None, "Config file, e.g. configs/dvs_gesture.py; override fields with --config.a.b=value. "
    "Default: configs/<dataset>.py.", lock_config=True)
flags.DEFINE_enum("dataset", None, sorted(DATASETS), "Dataset (default: the config's, digits_events).")
flags.DEFINE_string("loss", None, "Loss, a registered name (spikejax.losses: mse, softmax, nll, or your own "
                    "through --import; default: the config's, nll).")
flags.DEFINE_integer("window", None, "Sliding window in steps for a loss with a window parameter (--loss=nll; "
                     "default: whole sample).")
flags.DEFINE_multi_string("import", [], "A module on the Python path to import before the config is read, e.g. "
                          "one that registers your own loss with @spikejax.losses.register (repeatable).")
flags.DEFINE_string("workdir", None, "Run directory, reused to resume. Default for train: "
                    "runs/<dataset>-<loss>[-<param><value>][-seed<S>]; for compare_losses: runs/compare-<dataset>; "
                    "evaluate and export require it.")
flags.DEFINE_string("data_dir", None, "Where datasets are downloaded and cached (default: $SPIKEJAX_DATA_DIR, "
                    "else ~/.cache/spikejax).")
flags.DEFINE_integer("epochs", None, "Training epochs.")
flags.DEFINE_integer("batch_size", None, "Global batch size (all devices and hosts together).")
flags.DEFINE_integer("seed", None, "Seed of the initialisation and data order.")
flags.DEFINE_integer("max_steps", None, "Stop after this many steps (smoke runs).")
flags.DEFINE_string("coordinator_address", None, "Multi-process: host:port of process 0.")
flags.DEFINE_integer("num_processes", None, "Multi-process: number of processes.")
flags.DEFINE_integer("process_id", None, "Multi-process: this process's index.")
flags.DEFINE_bool("distributed", False, "Multi-process with auto-detection (TPU pods, Slurm, ...).")

FLAGS = flags.FLAGS
DEFAULT_DATASET = "digits_events"

# The shared flags, by what they are for; each program lists under --help the ones it reads (show_in_help).
RUN_FLAGS = ("config", "dataset", "loss", "window", "import", "workdir", "data_dir", "epochs", "batch_size", "seed",
             "max_steps")
MULTI_PROCESS_FLAGS = ("coordinator_address", "num_processes", "process_id", "distributed")
HELP_FLAGS = ("--help", "-help", "--helpshort", "-helpshort", "-h", "-?", "--helpfull", "-helpfull")


def show_in_help(*names: str) -> None:
    """Makes these shared flags key flags of the program being run, so that its --help lists them (absl's
    --help lists only the main module's key flags). absl names the __main__ module by sys.argv[0]."""
    for name in names:
        FLAGS.register_key_flag_for_module(sys.argv[0], FLAGS[name])


def _help(argv: list[str]) -> None:
    """--help (or -h): the program's docstring and its flags, exit 0; --helpfull: every flag, exit 0.
    (absl's own help flags exit 1.)"""
    from absl import app

    asked = [arg for arg in argv if arg in HELP_FLAGS]
    if not asked:
        return
    full = any(arg.lstrip("-") == "helpfull" for arg in asked)
    app.usage(shorthelp=not full, writeto_stdout=True)
    if not full:
        print("\nEvery flag, absl's and jax's included: --helpfull.")
    sys.exit(0)


def config_path(dataset: str) -> str:
    """configs/<dataset>.py, relative to the working directory when it lies below it."""
    path = os.path.join(os.path.dirname(os.path.abspath(configs.__file__)), f"{dataset}.py")
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def flag_value(argv: list[str], name: str) -> str | None:
    """The last value given to --name in argv (forms --name=v and --name v), else None."""
    value = None
    for i, arg in enumerate(argv):
        if arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
        elif arg == f"--{name}" and i + 1 < len(argv):
            value = argv[i + 1]
    return value


def _default_config(argv: list[str]) -> str | None:
    dataset = flag_value(argv, "dataset") or DEFAULT_DATASET
    return config_path(dataset) if dataset in DATASETS else None  # an unknown name: the --dataset enum says so


# Config-file flags and their default file given the command line (None: leave it to the flag). The default
# is written into argv before parsing, because ml_collections applies --name.a.b=v overrides only to a file
# named on the command line. Entry points with a config flag of their own add it here.
CONFIG_FILE_DEFAULTS = {"config": _default_config}

# Flags defined here that the running program does not use: name -> what to do instead (one sentence). The
# program fills it at import; `parse_flags` refuses any of them given on the command line. For "config",
# --config=FILE is refused, and so is every --config.a.b override outside CONFIG_FIELDS_USED.
NOT_USED: dict[str, str] = {}
CONFIG_FIELDS_USED: tuple[str, ...] = ()


def config_overrides() -> dict:
    """{"a.b": value} of the --config.a.b flags given on the command line."""
    return dict(config_flags.get_override_values(FLAGS["config"]))


def _refuse_unused(injected: set[str]) -> None:
    for name, instead in NOT_USED.items():
        spelled = None
        if name == "config":
            if FLAGS["config"].present and "config" not in injected:
                spelled = "--config"
            else:
                spelled = next((f"--config.{k}" for k in config_overrides() if k not in CONFIG_FIELDS_USED), None)
        elif FLAGS[name].present:
            spelled = f"--{name}"
        if spelled:
            _fail(f"{spelled} is not used here: {instead}", 2)


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with configs/<dataset>.py as the --config default (see CONFIG_FILE_DEFAULTS)
    and one-line errors (exit 2) instead of tracebacks."""
    argv = list(argv)
    _help(argv[1:])
    import_modules(argv[1:])
    injected = set()
    for name, default in CONFIG_FILE_DEFAULTS.items():
        path = default(argv[1:]) if flag_value(argv[1:], name) is None else None
        if path is not None:
            argv.insert(1, f"--{name}={path}")
            injected.add(name)
    try:
        rest = FLAGS(argv)
        _refuse_unused(injected)
        return rest
    except flags.Error as error:
        _fail(f"{error}", 2)
    except (AttributeError, KeyError) as error:  # ml_collections: an unknown --config.a.b field
        text = str(error).replace("\\'", "'").replace("\\n", " ")
        name = re.search(r"'([^']+)'", text)
        hint = re.search(r'Did you mean "([^"]+)"', text)
        _fail(f"unknown config field {name.group(1) if name else text!r}"
              + (f" (did you mean {hint.group(1)!r}?)" if hint else ""), 2)


def import_modules(argv: list[str]) -> None:
    """Imports every --import=MODULE of argv (before the config files, which read the loss registry)."""
    for i, arg in enumerate(argv):
        names = None
        if arg.startswith("--import="):
            names = arg.split("=", 1)[1]
        elif arg == "--import" and i + 1 < len(argv):
            names = argv[i + 1]
        for name in (names or "").split(","):
            if not name:
                continue
            try:
                importlib.import_module(name)
            except ImportError as error:
                _fail(f"--import={name}: {error}; the module must be importable from the working directory or "
                      "$PYTHONPATH", 2)
            except ValueError as error:  # e.g. a loss registered twice, or a bad Param
                _fail(f"--import={name}: {error}", 2)


def _verbose() -> bool:
    return bool(os.environ.get("SPIKEJAX_TRACEBACK")) or (FLAGS.is_parsed() and FLAGS["verbosity"].present)


def _fail(message: str, code: int):
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def _is_closed_loop_noise(error) -> bool:
    return isinstance(error, RuntimeError) and str(error) == "Event loop is closed"


def _is_orbax_coroutine(obj) -> bool:
    code = getattr(obj, "cr_code", None)
    return code is not None and f"{os.sep}orbax{os.sep}" in code.co_filename


def silence_orbax_shutdown_noise() -> None:
    """After a failed orbax write (a full disk) or read (a damaged checkpoint), the other shards' I/O
    coroutines are abandoned and tensorstore still calls back into orbax's closed event loop: each prints a
    traceback ("Exception ignored in <coroutine ...>", "Event loop is closed") that carries nothing the
    one-line error does not say. Drop only those; spikejax reports the failure itself."""
    import threading

    unraisable, thread_hook = sys.unraisablehook, threading.excepthook

    def on_unraisable(u):
        if not (_is_closed_loop_noise(u.exc_value) or _is_orbax_coroutine(u.object)):
            unraisable(u)

    sys.unraisablehook = on_unraisable
    threading.excepthook = lambda a: None if _is_closed_loop_noise(a.exc_value) else thread_hook(a)


class Stopped(KeyboardInterrupt):
    """SIGINT or SIGTERM outside the training loop (which saves first, see `spikejax.loop.StopSignal`)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum, frame):
    raise Stopped(signum)


def redeliver_lost_stops() -> None:
    """A signal handler's exception raised while Python runs a callback (a garbage-collection callback of
    jax's, a __del__) is "ignored": printed and dropped, and the program went on to finish with exit 0
    after a Ctrl-C (seen in CI: SIGINT during the cache build, swallowed in jax's _xla_gc_callback). When a
    Stopped is dropped that way, the signal is raised again, so its handler runs once more at the next
    bytecode of the main program, and nothing is printed."""
    previous = sys.unraisablehook

    def hook(unraisable):
        if isinstance(unraisable.exc_value, Stopped):
            signal.raise_signal(unraisable.exc_value.signum)
            return
        previous(unraisable)

    sys.unraisablehook = hook


def run(main) -> None:
    """app.run(main) with the flags above; SpikejaxError, a full disk and app.UsageError end the process
    with one line on stderr and the error's exit code; SIGINT / SIGTERM outside the training loop with one
    line and exit 130 / 143, after the `finally` blocks on the way (temporary files) have run."""

    def guarded(argv):
        import experiments

        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            return _guarded(argv)
        finally:  # an in-process caller (runpy, a notebook) gets the handlers it had before the entry point
            for sig, handler in previous.items():
                handler = experiments.REPLACED.get(sig, handler) if getattr(handler, "startup", False) else handler
                if handler is not None:
                    signal.signal(sig, handler)

    def _guarded(argv):
        for sig in (signal.SIGINT, signal.SIGTERM):
            current = signal.getsignal(sig)
            if getattr(current, "startup", False) or current in (signal.default_int_handler, signal.SIG_DFL):
                signal.signal(sig, _raise_stopped)
        if len(argv) > 1:
            _fail(f"unexpected arguments: {argv[1:]}", 2)
        quiet_logging()
        if not _verbose():
            silence_orbax_shutdown_noise()
        redeliver_lost_stops()
        try:
            main(argv)
        except KeyboardInterrupt as error:  # Stopped, or a SIGINT delivered before our handler was in place
            if _verbose():
                traceback.print_exc()
            signum = getattr(error, "signum", signal.SIGINT)
            print(f"stopped by {signal.Signals(signum).name}; no partial file was left; rerun the same command",
                  flush=True)
            sys.exit(128 + signum)
        except SpikejaxError as error:
            if _verbose():
                traceback.print_exc()
            stream = sys.stdout if error.exit_code > 2 else sys.stderr  # a stop by signal is no error
            print(f"{'' if error.exit_code > 2 else 'error: '}{error}", file=stream, flush=True)
            sys.exit(error.exit_code)
        except app.UsageError as error:
            _fail(str(error), 2)
        except OSError as error:
            if not is_disk_full(error):
                raise
            if _verbose():
                traceback.print_exc()
            _fail(f"no space left on the device ({getattr(error, 'filename', None) or error}); free space and rerun "
                  "the same command to resume", 1)

    app.run(guarded, flags_parser=parse_flags)


def quiet_logging() -> None:
    """Library logs (orbax prints several lines per checkpoint and a screenful per failed write) only with
    an explicit --verbosity; spikejax reports what matters itself."""
    from absl import logging

    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.FATAL)


def initialize_distributed() -> None:
    from spikejax import parallel

    parallel.initialize_distributed(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id,
                                    auto=FLAGS.distributed)


def build_config() -> ml_collections.ConfigDict:
    """The --config file (default configs/<--dataset>.py) with its --config.* overrides, then the short
    flags on top. Refuses a --dataset that contradicts the config file."""
    config = ml_collections.ConfigDict(FLAGS.config.to_dict())  # unlocked copy
    if FLAGS.dataset is not None and FLAGS.dataset != config.dataset:
        raise ConfigError(f"--dataset={FLAGS.dataset} conflicts with dataset {config.dataset!r} of "
                          f"--config={config_flags.get_config_filename(FLAGS['config'])}; drop one of the two "
                          f"flags, or use --config={config_path(FLAGS.dataset)}")
    overrides = {"data_dir": FLAGS.data_dir, "epochs": FLAGS.epochs, "batch_size": FLAGS.batch_size,
                 "seed": FLAGS.seed, "max_steps": FLAGS.max_steps}
    for key, value in overrides.items():
        if value is not None:
            config[key] = value
    if FLAGS.loss is not None:
        try:
            losses.get(FLAGS.loss)
        except ValueError as error:
            raise ConfigError(f"--loss={FLAGS.loss}: {error} (a loss of your own: --import=your_module)") from None
        config.loss.name = FLAGS.loss
    if FLAGS.window is not None:
        spec = losses.get(config.loss.name)
        if "window" not in [p.name for p in spec.params]:
            raise ConfigError(f"--window={FLAGS.window}: loss {config.loss.name!r} has no window parameter")
        config.loss[spec.name].window = FLAGS.window
    return config


def default_workdir(config) -> str:
    """runs/<dataset>-<loss>[-<param><value> for each loss parameter off its default][-seed<S> unless 0]."""
    from spikejax import config as config_lib

    spec = losses.get(config.loss.name)
    values = config_lib.loss_parameters(config)
    suffix = "".join(f"-{p.name}{values[p.name]:g}" if isinstance(values[p.name], float) else
                     f"-{p.name}{values[p.name]}" for p in spec.params if values[p.name] != p.default)
    seed = f"-seed{config.seed}" if config.seed else ""
    return f"runs/{config.dataset}-{config.loss.name}{suffix}{seed}"
