"""Thin absl entry points: train, evaluate, compare_losses, export, inspect_data, plot."""
import os
import signal

# the handlers exit_on_stop_signal replaced (Python's defaults), given back when `common.run` returns
REPLACED: dict = {}


def exit_on_stop_signal() -> None:
    """SIGINT/SIGTERM -> one line and exit 128 + n at once: for start-up (imports, flag parsing), which writes
    nothing. Entry points call it before their imports; `experiments.common.run` then raises
    `common.Stopped` instead, so that what is being written is cleaned up on the way out. Only Python's
    default handlers are replaced: a program that runs an entry point in-process (runpy) keeps its own."""
    def stop(signum, frame):
        print(f"stopped by {signal.Signals(signum).name} while starting; nothing was written", flush=True)
        os._exit(128 + signum)

    stop.startup = True  # `common.run` replaces only this handler (or Python's defaults), not a program's own
    for sig in (signal.SIGINT, signal.SIGTERM):
        current = signal.getsignal(sig)
        if current in (signal.default_int_handler, signal.SIG_DFL) or getattr(current, "startup", False):
            REPLACED.setdefault(sig, current)
            signal.signal(sig, stop)
