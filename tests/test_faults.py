"""The training program under faults, each with the real thing: a huge learning rate, truncated and deleted
checkpoint files, a second process on the same workdir and a SIGKILLed one, the environment, bad config
values, out-of-range labels, a killed run's metrics, damaged cache files, a full tmpfs, refused resumes,
and what a mistyped command prints."""
import glob
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from spikejax import data, errors, runs, train
from tests.test_train import REPO, _finish, _start, small_config


def _command(workdir, data_dir, *extra):
    return [sys.executable, "-m", "experiments.train", "--config.model.hidden=(32,)", "--config.plots=False",
            f"--workdir={workdir}", f"--data_dir={data_dir}", *extra]


def _cli(args, env=None, timeout=300):
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def _wait_for_lines(path, count, proc, limit=240):
    deadline = time.time() + limit
    while time.time() < deadline and proc.poll() is None:
        if os.path.exists(path) and sum(1 for _ in open(path)) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} never reached {count} lines (process exit {proc.poll()})")


def _error_lines(stderr):
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("WARNING: All log")]


# ---------------------------------------------------------------------------------------------------------
# 1. Non-finite parameters


def test_huge_learning_rate_stops_and_never_saves_a_non_finite_state(digits_data_dir, tmp_path):
    """lr=1e38 makes every parameter inf/NaN within a few steps while the loss of a silent network stays
    finite; the run must stop, save nothing non-finite, and keep the last good checkpoint."""
    config = small_config(digits_data_dir, max_steps=20, log_every=100, checkpoint_every_steps=1,
                          keep_checkpoints=50, **{"optimizer.learning_rate": 1e38, "optimizer.warmup_steps": 0,
                                                  "optimizer.schedule": "constant"})
    workdir = str(tmp_path / "huge_lr")
    with pytest.raises(errors.NonFiniteError, match=r"refusing to save step (\d+).*last good checkpoint"):
        train.train_and_evaluate(config, workdir)
    assert not os.path.exists(os.path.join(workdir, "eval.json"))
    steps = sorted(int(d) for d in os.listdir(os.path.join(workdir, "checkpoints")) if d.isdigit())
    assert steps and steps[-1] < 20
    run = runs.restore(config, workdir)
    state, step = run.state, run.step
    assert step == steps[-1]
    for leaf in jax.tree.leaves((state["params"], state["opt_state"])):
        assert np.all(np.isfinite(np.asarray(leaf)))


def test_nan_parameters_caught_at_a_log_step_with_a_finite_loss(digits_data_dir, tmp_path):
    config = small_config(digits_data_dir, max_steps=20, log_every=3, checkpoint_every_steps=1000,
                          **{"optimizer.learning_rate": 1e38, "optimizer.warmup_steps": 0,
                             "optimizer.schedule": "constant"})
    with pytest.raises(errors.NonFiniteError, match="non-finite parameters at step 3 .*nothing was saved"):
        train.train_and_evaluate(config, str(tmp_path / "w"))


# ---------------------------------------------------------------------------------------------------------
# 2. Damaged checkpoints


def _largest_file(folder):
    files = [p for p in glob.glob(os.path.join(folder, "**", "*"), recursive=True) if os.path.isfile(p)]
    return max(files, key=os.path.getsize)


def test_damaged_latest_checkpoint_falls_back_to_the_newest_intact_one(digits_data_dir, tmp_path):
    """Two damages of the newest checkpoint, each in its own copy of one trained run: a truncated state file
    and a deleted _METADATA. Both evaluations run at once."""
    config = small_config(digits_data_dir, max_steps=6, checkpoint_every_steps=3)
    first = str(tmp_path / "first")
    train.train_and_evaluate(config, first)
    workdirs = {"truncate": str(tmp_path / "truncate"), "delete": str(tmp_path / "delete")}
    for damage, workdir in workdirs.items():
        shutil.copytree(first, workdir)
        damaged = os.path.join(workdir, "checkpoints", "6")
        if damage == "truncate":
            os.truncate(_largest_file(os.path.join(damaged, "state")), 1000)
        else:
            os.remove(os.path.join(damaged, "state", "_METADATA"))
    started = {damage: _start(["experiments.evaluate", f"--workdir={workdir}"])
               for damage, workdir in workdirs.items()}
    for damage, workdir in workdirs.items():
        out = _finish(started[damage])
        stderr = out.stderr
        damaged = os.path.join(workdir, "checkpoints", "6")
        assert out.returncode == 0, stderr[-3000:]
        assert f"checkpoint {damaged} is damaged" in stderr and "step 3" in stderr, damage
        assert "Traceback" not in stderr
        assert json.load(open(os.path.join(workdir, "eval.json")))["step"] == 3
        # training resumes from step 3, moves the damaged folder aside and saves step 6 again
        result = train.train_and_evaluate(small_config(digits_data_dir, max_steps=9, checkpoint_every_steps=3),
                                          workdir)
        assert result["step"] == 9
        assert glob.glob(os.path.join(workdir, "checkpoints", "6.damaged-*"))
        assert runs.restore(config, workdir).step == 9


# ---------------------------------------------------------------------------------------------------------
# 3. One run per workdir


@pytest.mark.slow
def test_second_run_on_a_workdir_is_refused_and_a_dead_owner_is_taken_over(digits_data_dir, tmp_path):
    workdir = str(tmp_path / "shared")
    first = subprocess.Popen(_command(workdir, digits_data_dir, "--epochs=50", "--config.log_every=1"), cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_lines(os.path.join(workdir, "metrics.jsonl"), 2, first)
        started = time.time()
        second = _cli(_command(workdir, digits_data_dir, "--max_steps=2"))
        assert second.returncode == 2, second.stderr[-2000:]
        assert time.time() - started < 60
        assert _error_lines(second.stderr) == [
            f"error: workdir {workdir} is in use by pid {first.pid} on {os.uname().nodename}; wait for it to "
            "finish, stop it, or choose another --workdir"]
    finally:
        first.send_signal(signal.SIGKILL)  # dies holding the lock; the kernel releases it
        first.communicate(timeout=60)
    third = _cli(_command(workdir, digits_data_dir, "--epochs=50", "--max_steps=3"))
    assert third.returncode == 0, third.stderr[-3000:]
    assert f"took over the lock of {workdir} from pid {first.pid}" in third.stdout


def test_lock_is_released_and_a_failed_start_leaves_no_folder(tmp_path):
    from spikejax.workdir import WorkdirLock

    workdir = str(tmp_path / "new")
    with WorkdirLock(workdir):
        with pytest.raises(errors.WorkdirLockedError, match=f"workdir {workdir} is in use by pid {os.getpid()}"):
            WorkdirLock(workdir).acquire()
    assert not os.path.exists(workdir)  # created by the lock, nothing else written: removed again
    os.makedirs(workdir)
    open(os.path.join(workdir, "keep"), "w").close()
    with WorkdirLock(workdir) as lock:
        assert lock.stale_owner is None
    with WorkdirLock(workdir):  # released: a new run takes it without calling the old one stale
        pass
    assert sorted(os.listdir(workdir)) == [".lock", "keep"]


# ---------------------------------------------------------------------------------------------------------
# 4. $SPIKEJAX_DATA_DIR


# Every entry point (train, evaluate, inspect_data) run with only $SPIKEJAX_DATA_DIR set and HOME elsewhere:
# tests/test_train.py::test_train_evaluate_and_inspect_commands.


def test_default_data_dir_is_read_at_call_time(monkeypatch):
    monkeypatch.setenv("SPIKEJAX_DATA_DIR", "/somewhere/else")
    assert data.default_data_dir() == "/somewhere/else"
    monkeypatch.delenv("SPIKEJAX_DATA_DIR")
    assert data.default_data_dir() == "~/.cache/spikejax"


# ---------------------------------------------------------------------------------------------------------
# 5. Config values checked before any work; 11. one line, exit code 2


@pytest.mark.slow
@pytest.mark.parametrize("flag,message", [
    ("--epochs=-1", "config field epochs = -1: must be an integer >= 1"),
    ("--batch_size=0", "config field batch_size = 0: must be an integer >= 1"),
    ("--config.optimizer.learning_rate=-1", "config field optimizer.learning_rate = -1.0: must be a finite number > 0"),
    ("--config.model.neuron.beta=1.5", "config field model.neuron.beta = 1.5: must be a finite number >= 0 and <= 1"),
    ("--config.optimizer.learnin_rate=1", "unknown config field 'learnin_rate' (did you mean 'learning_rate'?)"),
    ("--config=configs/nmnist.py --dataset=dvs_gesture", "--dataset=dvs_gesture conflicts with dataset 'nmnist'"),
    ("--batch_size=5000", "config field batch_size = 5000: must be <= the 1294 training samples"),
])
def test_bad_values_exit_2_with_one_line_before_any_work(digits_data_dir, tmp_path, flag, message):
    empty = tmp_path / "no_data"
    empty.mkdir()
    workdir = tmp_path / "run"
    data_dir = digits_data_dir if "5000" in flag else str(empty)  # the sample count needs the data
    out = _cli([sys.executable, "-m", "experiments.train", *flag.split(), f"--data_dir={data_dir}",
                f"--workdir={workdir}"])
    assert out.returncode == 2, out.stderr[-2000:]
    lines = _error_lines(out.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""
    assert not workdir.exists() and os.listdir(empty) == []  # nothing loaded, nothing written
    if "beta" in flag:  # the traceback on request
        out = _cli([sys.executable, "-m", "experiments.train", flag, f"--workdir={workdir}"],
                   env={"SPIKEJAX_TRACEBACK": "1", "SPIKEJAX_DATA_DIR": str(empty)})
        assert out.returncode == 2 and "Traceback" in out.stderr and message in out.stderr


# ---------------------------------------------------------------------------------------------------------
# 6. Labels outside [0, C)


def test_data_layer_refuses_labels_outside_the_classes(tmp_path):
    from spikejax.data.cache import load_or_build
    from spikejax.data.events import Binning

    events = np.zeros(3, [("x", int), ("y", int), ("t", int), ("p", int)])
    events["t"] = [0, 10, 20]
    kwargs = dict(name="toy", split="train", cache_dir=str(tmp_path), sensor_size=(4, 4, 2),
                  binning=Binning(time_bins=2, bin_width_us=10), classes=["a", "b"], source_options={},
                  log=lambda message: None)
    with pytest.raises(errors.DataError, match="sample 1 has label 2, outside"):
        load_or_build(samples=lambda: iter([(events, 0), (events, 2)]), **kwargs)
    split = load_or_build(samples=lambda: iter([(events, 0), (events, 1)]), **kwargs)
    labels = os.path.join(split.path, "labels.npy")
    array = np.load(labels)
    array[1] = -1  # an out-of-range label written at the same size, checksum updated: still refused
    np.save(labels, array)
    meta = json.load(open(os.path.join(split.path, "meta.json")))
    from spikejax.data.cache import file_crc32, verify

    meta["files"]["labels.npy"]["crc32"] = file_crc32(labels)
    json.dump(meta, open(os.path.join(split.path, "meta.json"), "w"))
    verify(split.path)
    from spikejax.data.cache import _open

    with pytest.raises(errors.DataError, match=r"labels in \[-1, 0\], outside \[0, 2\)"):
        _open(split.path)


# ---------------------------------------------------------------------------------------------------------
# 7. metrics.jsonl and TensorBoard after a kill and a resume


def _tensorboard_steps(folder):
    """Steps of 'train/loss' in every event file, read with the TFRecord framing and the Event proto."""
    from tensorboardX.proto import event_pb2

    steps, purges = [], []
    for path in sorted(glob.glob(os.path.join(folder, "events.out.tfevents.*"))):
        blob = open(path, "rb").read()
        offset = 0
        while offset + 12 <= len(blob):
            (length,) = struct.unpack("<Q", blob[offset:offset + 8])
            record = blob[offset + 12:offset + 12 + length]
            offset += 12 + length + 4
            if len(record) < length:
                break
            event = event_pb2.Event.FromString(record)
            if event.HasField("session_log") and event.session_log.status == event.session_log.START:
                purges.append(event.step)
            for value in event.summary.value:
                if value.tag == "train/loss":
                    steps.append(event.step)
    return steps, purges


@pytest.mark.slow
def test_killed_run_metrics_are_flushed_and_resume_drops_repeated_steps(digits_data_dir, tmp_path):
    workdir = str(tmp_path / "run")
    command = _command(workdir, digits_data_dir, "--config.log_every=1", "--config.checkpoint_every_steps=5",
                       "--epochs=1")
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = os.path.join(workdir, "metrics.jsonl")
    _wait_for_lines(metrics, 8, proc)
    proc.send_signal(signal.SIGKILL)  # no handler, no save
    proc.communicate(timeout=60)
    logged = [json.loads(line)["step"] for line in open(metrics) if line.endswith("\n")]
    assert logged[:8] == list(range(1, 9))
    tb_steps, _ = _tensorboard_steps(os.path.join(workdir, "tensorboard"))
    assert set(logged) <= set(tb_steps)  # flushed at every log step: nothing lost to the kill
    checkpoint = max(int(d) for d in os.listdir(os.path.join(workdir, "checkpoints")) if d.isdigit())
    assert checkpoint < logged[-1]
    out = _cli(command)
    assert out.returncode == 0, out.stderr[-2000:]
    steps = [json.loads(line)["step"] for line in open(metrics)]
    assert steps == list(range(1, 21))  # 20 steps per epoch (143 samples held out), each exactly once
    _, purges = _tensorboard_steps(os.path.join(workdir, "tensorboard"))
    assert checkpoint + 1 in purges  # TensorBoard drops the killed run's steps after the checkpoint


# ---------------------------------------------------------------------------------------------------------
# 8. Damaged cache files; interrupted builds


def test_damaged_cache_is_named_and_rebuilt_never_read(tmp_path, capsys):
    from tests import fixtures

    root = str(tmp_path)
    fixtures.write_nmnist(root)
    binning = data.Binning(time_bins=8, bin_width_us=5_000)
    good = data.load("nmnist", "train", data_dir=root, binning=binning)
    reference = good.dense(np.arange(len(good))).copy()
    spikes = os.path.join(good.path, "spikes.npy")
    size = os.path.getsize(spikes)
    os.truncate(spikes, size - 7)
    again = data.load("nmnist", "train", data_dir=root, binning=binning)
    assert f"cache {good.path} is damaged: spikes.npy has {size - 7} bytes" in capsys.readouterr().err
    np.testing.assert_array_equal(again.dense(np.arange(len(again))), reference)
    with open(spikes, "r+b") as f:  # flip bits at the same size
        f.seek(size - 3)
        byte = f.read(1)
        f.seek(size - 3)
        f.write(bytes([byte[0] ^ 0xFF]))
    again = data.load("nmnist", "train", data_dir=root, binning=binning)
    assert "spikes.npy fails its CRC-32 check" in capsys.readouterr().err
    np.testing.assert_array_equal(again.dense(np.arange(len(again))), reference)


def test_temporary_folders_of_dead_builds_are_removed(tmp_path):
    import socket

    from tests import fixtures

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    cache = tmp_path / "cache"
    stale = cache / f".tmp-{socket.gethostname()}-{dead.pid}-abc"
    live = cache / f".tmp-{socket.gethostname()}-{os.getpid()}-def"
    other_host = cache / ".tmp-elsewhere-1-ghi"
    for folder in (stale, live, other_host):
        folder.mkdir(parents=True)
        (folder / "spikes.npy").write_bytes(b"partial")
    fixtures.write_nmnist(str(tmp_path))
    data.load("nmnist", "train", data_dir=str(tmp_path), binning=data.Binning(time_bins=4, bin_width_us=5_000))
    assert not stale.exists() and live.exists() and other_host.exists()


# ---------------------------------------------------------------------------------------------------------
# 9. A full disk


@pytest.fixture
def small_filesystem(tmp_path):
    """A real 1.5 MiB tmpfs (needs root, as CI runs); skipped where mounting is not allowed."""
    mount = tmp_path / "small"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1536k", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow
def test_full_disk_gives_one_line_removes_partial_files_and_keeps_the_last_checkpoint(digits_data_dir,
                                                                                      small_filesystem):
    workdir = str(small_filesystem / "run")
    out = _cli(_command(workdir, digits_data_dir, "--config.checkpoint_every_steps=2", "--config.keep_checkpoints=20",
                        "--max_steps=20"))
    assert out.returncode == 1, out.stdout[-2000:] + out.stderr[-2000:]
    lines = _error_lines(out.stderr)
    assert len(lines) == 1 and "no space left on the device" in lines[0], out.stderr[-3000:]
    assert not glob.glob(os.path.join(workdir, "checkpoints", "*tmp*"))
    steps = sorted(int(d) for d in os.listdir(os.path.join(workdir, "checkpoints")) if d.isdigit())
    assert steps, "the tmpfs should hold at least one checkpoint"
    assert f"(step {steps[-1]}) is intact" in lines[0]
    assert runs.restore(small_config(digits_data_dir), workdir).step == steps[-1]


# ---------------------------------------------------------------------------------------------------------
# 10. Nothing written before the checks pass


def test_refused_resume_and_failed_starts_write_nothing(digits_data_dir, tmp_path):
    workdir = tmp_path / "run"
    train.train_and_evaluate(small_config(digits_data_dir, max_steps=2), str(workdir))
    before = {p: os.path.getmtime(p) for p in glob.glob(str(workdir / "**"), recursive=True)}
    saved = (workdir / "config.json").read_text()
    with pytest.raises(errors.ConfigMismatchError, match="model.hidden"):
        train.train_and_evaluate(small_config(digits_data_dir, max_steps=4, **{"model.hidden": (48,)}), str(workdir))
    assert (workdir / "config.json").read_text() == saved
    after = {p: os.path.getmtime(p) for p in glob.glob(str(workdir / "**"), recursive=True)}
    assert after == before
    fresh = tmp_path / "fresh"
    with pytest.raises(errors.ConfigError, match="batch_size"):
        train.train_and_evaluate(small_config(digits_data_dir, batch_size=4096), str(fresh))
    assert not fresh.exists()
    with pytest.raises(errors.NoCheckpointError, match="train first"):
        runs.evaluate(small_config(digits_data_dir), str(tmp_path / "missing"))
    assert not (tmp_path / "missing").exists()
