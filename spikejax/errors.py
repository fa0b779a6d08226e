"""The errors spikejax raises for conditions a user can act on, each with the exit code the command-line
entry points turn it into. Everything else is a bug and keeps its traceback.

  exit 2   UsageError: something in what was asked (a config value, a conflicting resume, a busy workdir)
  exit 2   MissingDependencyError: what was asked needs an optional package (the message names the extra)
  exit 1   RunError: the run could not go on (non-finite state, full disk, damaged or missing data)
  128+n    Interrupted: stopped by signal n after saving a checkpoint; rerunning resumes

This module imports nothing at import time, so any layer may raise these.
"""
from __future__ import annotations

import errno


class SpikejaxError(Exception):
    """Base class; `exit_code` is what `experiments/` exits with."""

    exit_code = 1


class UsageError(SpikejaxError, ValueError):
    exit_code = 2


class ConfigError(UsageError):
    """A config value outside its allowed range or type, or conflicting flags."""


class ConfigMismatchError(UsageError):
    """The workdir holds a run whose config differs in a field that may not change on resume."""


class WorkdirLockedError(UsageError):
    """Another live process is running in the same workdir."""


class NoCheckpointError(UsageError, FileNotFoundError):
    """No (intact) checkpoint where one is needed."""


class RunError(SpikejaxError, RuntimeError):
    exit_code = 1


class NonFiniteError(RunError, FloatingPointError):
    """Non-finite loss, gradients or parameters; the last good checkpoint is kept."""


class DiskFullError(RunError, OSError):
    """No space left on the device; partial files were removed."""

    def __init__(self, message: str):
        RunError.__init__(self, message)
        self.errno = errno.ENOSPC


class DataError(RunError, ValueError):
    """A dataset file or cache is missing, malformed or damaged; the message names it."""


class MissingDependencyError(SpikejaxError, ImportError):
    """An optional package is not installed; the message names the extra that installs it."""

    exit_code = 2


def require(module: str, extra: str, needed_by: str):
    """`importlib.import_module(module)`, or a one-line MissingDependencyError naming `pip install
    "spikejax[<extra>]"` when it (or a package it needs) is not installed. `needed_by` says what asked."""
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        raise MissingDependencyError(f"{needed_by} needs the optional package {module} ({error}): "
                                     f'pip install "spikejax[{extra}]"') from None


class Interrupted(SpikejaxError):
    """A stop signal arrived; a checkpoint was saved first. `exit_code` is 128 + the signal number."""

    def __init__(self, signal_name: str, step: int):
        import signal

        super().__init__(f"stopped by {signal_name} at step {step}; rerun the same command to resume")
        self.signal_name, self.step = signal_name, step
        self.exit_code = 128 + int(getattr(signal, signal_name))


def is_disk_full(error: BaseException) -> bool:
    """True for ENOSPC, also when a library (tensorstore, orbax) wraps it in another exception type."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return True
        if "No space left on device" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False
