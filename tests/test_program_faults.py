"""The programs under faults (issue 20, item 4), each with the real thing: symlinks in place of the files
spikejax writes, a sweep rerun with another length, diverging configurations, flags a program does not
use, a real SIGINT/SIGTERM during start-up, a second process writing checkpoints while they are read, a
checkpoint left half-written, and a resume against other data."""
import glob
import json
import os
import shutil
import signal
import threading
import time

import numpy as np
import pytest

from spikejax import checkpoint, errors, runs, train
from spikejax.compare import report as comparison
from spikejax.compare import sweep
from spikejax.data import cache
from tests.test_sweep import _test_summary
from tests.test_train import _finish, _start, small_config

# ---------------------------------------------------------------------------------------------------------
# Symlinks in place of files spikejax writes: refused, never followed


def test_symlinks_in_place_of_written_files_are_refused_and_their_targets_untouched(tmp_path):
    from spikejax import plots
    from spikejax.files import atomic_write_json
    from spikejax.metric_writer import MetricWriter
    from spikejax.workdir import WorkdirLock

    workdir = tmp_path / "run"
    workdir.mkdir()
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    names = [".lock", "eval.json", "metrics.jsonl", "accuracy_over_time.png"]
    for name in names:
        os.symlink(target, workdir / name)
    with pytest.raises(errors.UsageError, match=rf"{workdir}/\.lock is a symlink \(to {target}\).*remove it"):
        WorkdirLock(str(workdir)).acquire()
    with pytest.raises(errors.UsageError, match=r"eval\.json is a symlink"):
        atomic_write_json(str(workdir / "eval.json"), {"accuracy": 1.0})
    with pytest.raises(errors.UsageError, match=r"metrics\.jsonl is a symlink"):
        MetricWriter(str(workdir))
    with pytest.raises(errors.UsageError, match=r"metrics\.jsonl is a symlink"):
        MetricWriter(str(workdir), resume_step=3)  # the resume path rewrites the file
    result = {"accuracy": 0.5, "accuracy_over_time": [0.1, 0.5]}
    with pytest.raises(errors.UsageError, match=r"accuracy_over_time\.png is a symlink"):
        plots.accuracy_over_time({"nll": result}, str(workdir / "accuracy_over_time.png"))
    assert target.read_text() == "keep me\n"
    assert sorted(os.listdir(workdir)) == sorted(names)  # no temporary file left behind
    # without the links, the same calls write whole files
    for name in names:
        os.remove(workdir / name)
    atomic_write_json(str(workdir / "eval.json"), {"accuracy": 1.0})
    plots.accuracy_over_time({"nll": result}, str(workdir / "accuracy_over_time.png"))
    assert json.load(open(workdir / "eval.json")) == {"accuracy": 1.0}
    assert (workdir / "accuracy_over_time.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------------------
# Diverged configurations: never selected, listed with their step


def _final(label, seed, accuracy):
    return {"row": {"label": label, "loss": label, "learning_rate": 1e-3, "seed": seed}, "frozen_at": None,
            "validation": {"accuracy": 0.5}, "test": _test_summary(accuracy, 500.0, 5, 6.0), "train_seconds": 1.0}


def test_diverged_configurations_are_never_selected_and_the_report_lists_them(tmp_path):
    def tuned(label, lr, seed, accuracy, frozen_at=None):
        return {"row": {"label": label, "loss": label, "learning_rate": lr, "seed": seed}, "frozen_at": frozen_at,
                "validation": {"accuracy": accuracy, "loss": 1.0, "step": 6}, "validation_curve": [], "test": None,
                "train_seconds": 1.0}

    tune = [tuned("mse", 1e-3, 1000, 0.5), tuned("mse", 1e38, 1000, 0.9, frozen_at=2),  # best, but diverged
            tuned("softmax", 1e38, 1000, 0.8, frozen_at=3), tuned("softmax", 1e37, 1000, 0.7, frozen_at=4),
            tuned("nll", 1e-3, 1000, 0.6)]
    selection = sweep.select(tune)
    assert selection["mse"]["row"]["learning_rate"] == 1e-3
    assert selection["softmax"]["row"] is None and selection["softmax"]["validation_mean"] is None
    final = [_final(label, s, a) for label in ("mse", "nll") for s, a in ((0, 0.7), (1, 0.8))]
    result = {"config": small_config("/nowhere").to_dict(), "sweep": {"losses": ["mse", "softmax", "nll"],
                                                                       "tune_seeds": 1},
              "grid": [], "tune": tune, "final": final, "train_seconds": {"tune": 1.0, "final": 2.0},
              "selection": selection}
    result["config"]["model"]["hidden"] = list(result["config"]["model"]["hidden"])
    report = comparison.write(result, str(tmp_path))
    saved = json.load(open(tmp_path / "comparison.json"))
    assert saved["every_configuration_diverged"] == ["softmax"] and set(saved["losses"]) == {"mse", "nll"}
    assert [(d["label"], d["config"]["learning_rate"], d["seed"], d["step"]) for d in saved["diverged"]] == [
        ("mse", 1e38, 1000, 2), ("softmax", 1e38, 1000, 3), ("softmax", 1e37, 1000, 4)]
    text = (tmp_path / "comparison.md").read_text()
    assert "- tune: mse lr=1e+38: diverged (seed 1000 at step 2); never selected" in text
    assert "softmax: every configuration diverged in tuning" in text
    assert "| softmax |" not in report["table"]


# ---------------------------------------------------------------------------------------------------------
# A sweep program on disk is reused only for the same length


def test_a_finished_sweep_program_is_not_reported_for_another_length(digits_data_dir, tmp_path):
    config = small_config(digits_data_dir, max_steps=2)
    rows = [{"label": "nll", "loss": "nll", "learning_rate": 1e-3, "seed": 0}]
    folder = str(tmp_path / "program")
    records = sweep.run_program(config, rows, folder, test=False)
    assert sweep.run_program(config, rows, folder, test=False) == records  # the same command: reused
    for field, value, flag in (("max_steps", 4, "--config.max_steps=2"), ("epochs", 3, "--sweep.epochs=1")):
        changed = small_config(digits_data_dir, **{"max_steps": 2, field: value})
        expected = 2 if field == "max_steps" else 1
        with pytest.raises(errors.ConfigMismatchError,
                           match=rf"trained with {field} = {expected}, now {field} = {value};.*rerun with {flag}"):
            sweep.run_program(changed, rows, folder, test=False)


# ---------------------------------------------------------------------------------------------------------
# Resume against other data; the data directory of evaluation; checkpoints being written


def _altered_copy(data_dir, destination, swap_labels):
    """A copy of `data_dir`'s digits_events caches; with `swap_labels`, the train split's first two labels
    swapped and its meta.json updated, so it is a valid cache of other data under the same key."""
    shutil.copytree(os.path.join(data_dir, "cache"), os.path.join(destination, "cache"))
    if swap_labels:
        folder, = glob.glob(os.path.join(destination, "cache", "digits_events-train-*"))
        labels = np.load(os.path.join(folder, "labels.npy"))
        first = int(np.argmax(labels != labels[0]))
        labels[[0, first]] = labels[[first, 0]]
        np.save(os.path.join(folder, "labels.npy"), labels)
        meta = json.load(open(os.path.join(folder, "meta.json")))
        target = os.path.join(folder, "labels.npy")
        meta["files"]["labels.npy"] = {"bytes": os.path.getsize(target), "crc32": cache.file_crc32(target)}
        json.dump(meta, open(os.path.join(folder, "meta.json"), "w"))
    return destination


def test_resume_on_other_data_is_refused_and_evaluation_finds_the_data_where_it_is_now(digits_data_dir, tmp_path,
                                                                                        monkeypatch):
    workdir = str(tmp_path / "run")
    train.train_and_evaluate(small_config(digits_data_dir, max_steps=2, checkpoint_every_steps=1), workdir)
    moved = _altered_copy(digits_data_dir, str(tmp_path / "moved"), swap_labels=False)
    other = _altered_copy(digits_data_dir, str(tmp_path / "other"), swap_labels=True)
    with pytest.raises(errors.ConfigMismatchError, match=r"trained on other data: train split fingerprint \w+ "
                                                         rf"\(checkpoint\) != \w+ \(now, {other}/cache/"):
        train.train_and_evaluate(small_config(other, max_steps=3), workdir)
    # the same data in another folder resumes; a checkpoint without a fingerprint (older spikejax) is accepted
    assert train.train_and_evaluate(small_config(moved, max_steps=3), workdir)["step"] == 3
    checkpoint.check_same_data({}, "anything", "here")
    # evaluation: --data_dir, else $SPIKEJAX_DATA_DIR, else the directory the run recorded
    monkeypatch.delenv("SPIKEJAX_DATA_DIR", raising=False)
    assert runs.evaluation_config(workdir).data_dir == moved
    monkeypatch.setenv("SPIKEJAX_DATA_DIR", other)
    assert runs.evaluation_config(workdir).data_dir is None  # data.default_data_dir() reads the variable
    assert runs.evaluation_config(workdir, data_dir=digits_data_dir, eval_batch_size=32).to_dict()[
        "eval_batch_size"] == 32
    with pytest.raises(errors.ConfigError, match="learning_rate is not an evaluation setting"):
        runs.evaluation_config(workdir, learning_rate=1.0)

    # a checkpoint left half-written by a killed writer (orbax's <step>.orbax-checkpoint-tmp-*) is never read
    folder = os.path.join(workdir, "checkpoints")
    shutil.copytree(os.path.join(folder, "3"), os.path.join(folder, "4.orbax-checkpoint-tmp-1700000000"))
    config = small_config(moved)
    assert runs.restore(config, workdir).step == 3
    for step in os.listdir(folder):
        if step.isdigit():
            shutil.rmtree(os.path.join(folder, step))
    with pytest.raises(errors.NoCheckpointError, match=r"no complete checkpoint .* yet \(step 4 is being written\)"):
        runs.restore(config, workdir)
    with pytest.raises(errors.NoCheckpointError, match=r"step 4 is being written"):
        runs.saved_config(workdir)


@pytest.mark.slow
def test_checkpoints_read_while_a_second_process_writes_them_are_never_called_damaged(digits_data_dir, tmp_path,
                                                                                      capfd):
    """A real training process saves every step and keeps one checkpoint (each save deletes the previous
    one) while this process restores the newest again and again, as export and evaluate do."""
    workdir = str(tmp_path / "run")
    writer = _start(["experiments.train", "--config.model.hidden=(32,)", f"--workdir={workdir}",
                     f"--data_dir={digits_data_dir}", "--epochs=50", "--config.checkpoint_every_steps=1",
                     "--config.keep_checkpoints=1", "--config.log_every=1"])
    config = small_config(digits_data_dir)
    restored, deadline = [], time.time() + 240
    try:
        while len(restored) < 25 and time.time() < deadline and writer[0].poll() is None:
            try:
                restored.append(runs.restore(config, workdir).step)
            except errors.NoCheckpointError as error:  # before the first save: says so, never "damaged"
                assert "damaged" not in str(error), error
                time.sleep(0.2)
    finally:
        writer[0].send_signal(signal.SIGTERM)
        out = _finish(writer)
    assert out.returncode == 143, out.stderr[-2000:]
    assert len(restored) >= 10 and restored == sorted(restored) and restored[-1] > restored[0], restored
    assert "damaged" not in capfd.readouterr().err


# ---------------------------------------------------------------------------------------------------------
# Flags a program does not use; Ctrl-C and SIGTERM outside the training loop


def _lines(text):
    return [line for line in text.splitlines() if line.strip() and not line.startswith("WARNING: All log")]


@pytest.mark.slow
def test_flags_a_program_does_not_use_are_refused_naming_what_to_use(tmp_path):
    cases = {
        ("experiments.evaluate", f"--workdir={tmp_path}", "--loss=softmax"):
            "error: --loss is not used here: experiments.evaluate reads it from the run's checkpoint; drop it",
        ("experiments.evaluate", f"--workdir={tmp_path}", "--batch_size=32"):
            "error: --batch_size is not used here: experiments.evaluate reads the training batch size from the "
            "run's checkpoint; set the evaluation batch with --config.eval_batch_size",
        ("experiments.evaluate", f"--workdir={tmp_path}", "--config.optimizer.learning_rate=1"):
            "error: --config.optimizer.learning_rate is not used here: experiments.evaluate reads the run's config "
            "from its checkpoint; drop it (evaluation settings: --data_dir, --config.eval_batch_size)",
        ("experiments.export", f"--workdir={tmp_path}", "--data_dir=/data"):
            "error: --data_dir is not used here: experiments.export reads no data; drop it",
        ("experiments.compare_losses", f"--workdir={tmp_path}", "--epochs=3"):
            "error: --epochs is not used here: the sweep's epochs (8) apply to both stages; use --sweep.epochs=3 "
            "instead",
        ("experiments.inspect_data", "--dataset=digits_events", "--max_steps=5"):
            "error: --max_steps is not used here: experiments.inspect_data does not train; drop it",
    }
    started = {args: _start(list(args)) for args in cases}
    for args, expected in cases.items():
        out = _finish(started[args])
        assert out.returncode == 2 and _lines(out.stderr) == [expected], (args, out.stderr[-2000:])
        assert out.stdout == ""
    assert os.listdir(tmp_path) == []


def _wait_for(text, file, process, limit=120):
    """Waits until the output file of a `_start`ed process holds `text` (pread: the child's offset is shared)."""
    deadline = time.time() + limit
    while time.time() < deadline and process.poll() is None:
        if text in os.pread(file.fileno(), 1 << 20, 0).decode(errors="replace"):
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared (exit {process.poll()})")


@pytest.mark.slow
def test_ctrl_c_and_sigterm_outside_the_training_loop_exit_with_one_line_and_leave_nothing(tmp_path):
    """SIGINT while the data cache is being built (a fresh --data_dir), SIGTERM while the program is still
    importing: exit 130 / 143, one line, no traceback, no workdir and no partial cache."""
    data_dir, workdir = tmp_path / "data", tmp_path / "run"
    building = _start(["experiments.train", f"--data_dir={data_dir}", f"--workdir={workdir}", "--max_steps=2"])
    importing = _start(["experiments.train", f"--data_dir={tmp_path / 'data2'}", f"--workdir={tmp_path / 'run2'}"])
    threading.Timer(1.0, importing[0].send_signal, (signal.SIGTERM,)).start()
    _wait_for("building cache", building[2], building[0])
    time.sleep(1.0)  # in the middle of the build
    building[0].send_signal(signal.SIGINT)
    for started, code, name in ((building, 130, "SIGINT"), (importing, 143, "SIGTERM")):
        out = _finish(started)
        assert out.returncode == code, out.stdout[-2000:] + out.stderr[-3000:]
        assert "Traceback" not in out.stderr and len(_lines(out.stderr)) <= 3, out.stderr
        assert _lines(out.stdout)[-1].startswith(f"stopped by {name}"), out.stdout
    assert not workdir.exists() and not (tmp_path / "run2").exists()
    leftovers = [p for p in glob.glob(str(data_dir / "**"), recursive=True) if ".tmp" in os.path.basename(p)]
    assert leftovers == [] and not glob.glob(str(data_dir / "cache" / "digits_events-train-*"))


def test_a_stop_dropped_inside_a_callback_is_delivered_again():
    """A Stopped raised where Python drops exceptions (here a real __del__; in CI it was jax's garbage
    collection callback, and a Ctrl-C'd run went on to exit 0) raises its signal again, so the handler
    runs once more in the main program, and nothing is printed."""
    import sys

    from experiments import common

    class DropsAStop:
        def __del__(self):
            raise common.Stopped(signal.SIGINT)

    received, hook = [], sys.unraisablehook
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        common.redeliver_lost_stops()
        DropsAStop()  # collected at once: __del__ raises, Python hands the exception to the unraisable hook
        for _ in range(100):  # the handler runs at the next bytecode boundaries of this thread
            if received:
                break
            time.sleep(0.01)
    finally:
        signal.signal(signal.SIGINT, previous)
        sys.unraisablehook = hook
    assert received == [signal.SIGINT]


@pytest.mark.parametrize("argv", [["--loss=nl"], ["unexpected"]], ids=["refused flag", "refused in the program"])
def test_a_program_run_in_process_gives_its_caller_the_signal_handlers_back(argv):
    """`python -m experiments.train` run with runpy inside another program (a notebook, a script; here a
    real child Python, so that absl's flags start empty), refused with exit 2 while parsing its flags or
    inside `common.run`: the caller's own SIGINT and SIGTERM handlers are in place afterwards."""
    import subprocess
    import sys

    from tests.test_train import REPO

    script = f"""
import runpy, signal, sys
mine = lambda signum, frame: None
signal.signal(signal.SIGINT, mine)
signal.signal(signal.SIGTERM, mine)
sys.argv = ["experiments.train", *{argv!r}]
try:
    runpy.run_module("experiments.train", run_name="__main__", alter_sys=True)
except SystemExit as exit:
    print("exit", exit.code)
print("restored", signal.getsignal(signal.SIGINT) is mine and signal.getsignal(signal.SIGTERM) is mine)
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert "exit 2" in out.stdout and "restored True" in out.stdout, out.stdout + out.stderr[-2000:]
