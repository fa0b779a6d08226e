"""Data: real tonic loaders on byte-exact fixtures (network blocked), downloads from a 127.0.0.1 server,
bad-input errors, binning against a loop, the cache and the resumable iterator."""
import functools
import gzip
import hashlib
import http.server
import os
import pickle
import shutil
import socket
import threading
import zipfile

import h5py
import numpy as np
import pytest

from spikejax import data
from spikejax.data import download, dvs_gesture, nmnist, ntidigits18, shd
from spikejax.data.events import Binning, bin_events
from tests import fixtures


@pytest.fixture(autouse=True)
def no_internet(monkeypatch):
    """Any connection other than to 127.0.0.1 fails."""
    real_connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if host not in ("127.0.0.1", "localhost"):
            raise OSError(f"network disabled in tests (tried {address})")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


def _flat(x, y, p, shape):
    channels, height, width = shape
    return (p * height + y) * width + x


def test_nmnist_fixture_through_tonic(tmp_path):
    written = fixtures.write_nmnist(str(tmp_path))
    binning = Binning(time_bins=8, bin_width_us=5_000)
    split = data.load("nmnist", "train", data_dir=str(tmp_path), binning=binning)
    assert split.frame_shape == (2, 34, 34)
    np.testing.assert_array_equal(split.labels, [label for _, _, label in written])
    for i, (_, (x, y, t, p), _) in enumerate(written):
        expected = fixtures.dense_reference(list(zip(t, _flat(x, y, p, (2, 34, 34)))), (2, 34, 34), 8, 5_000)
        np.testing.assert_array_equal(split.dense([i])[0].reshape(8, -1), expected)
    np.testing.assert_array_equal(split.events, [len(x) for _, (x, *_), _ in written])


def test_nmnist_first_saccade_option(tmp_path):
    fixtures.write_nmnist(str(tmp_path))
    folder = tmp_path / "NMNIST" / "Train" / "5"
    folder.mkdir()
    (folder / "00000.bin").write_bytes(fixtures.nmnist_bytes([1, 2, 3], [4, 5, 6], [10, 99_000, 150_000], [0, 1, 1]))
    full = list(nmnist.samples(str(tmp_path), "train"))
    first = list(nmnist.samples(str(tmp_path), "train", first_saccade_only=True))
    index = [i for i, (_, label) in enumerate(full) if label == 5][0]
    assert len(full[index][0]) == 3 and len(first[index][0]) == 2


def test_dvs_gesture_fixture_sorted_and_downsampled(tmp_path):
    written = fixtures.write_dvs_gesture(str(tmp_path))
    dataset = dvs_gesture.DVSGesture(str(tmp_path), train=True)
    assert dataset.data == sorted(dataset.data)
    binning = Binning(time_bins=10, bin_width_us=20_000, downsample=4)
    split = data.load("dvs_gesture", "train", data_dir=str(tmp_path), binning=binning)
    assert split.frame_shape == (2, 32, 32)
    np.testing.assert_array_equal(split.labels, [label for _, _, label in written])
    for i, (_, (x, y, t, p), _) in enumerate(written):
        flat = _flat(x // 4, y // 4, p, (2, 32, 32))
        expected = fixtures.dense_reference(list(zip(t, flat)), (2, 32, 32), 10, 20_000)
        np.testing.assert_array_equal(split.dense([i])[0].reshape(10, -1), expected)


def test_ntidigits_fixture_single_digits_and_handle_closed(tmp_path):
    expected = fixtures.write_ntidigits(str(tmp_path))
    binning = Binning(time_bins=6, bin_width_us=50_000, polarity=False)
    for split_name in ("train", "test"):
        split = data.load("ntidigits18", split_name, data_dir=str(tmp_path), binning=binning)
        assert split.frame_shape == (64,)
        np.testing.assert_array_equal(split.labels, [label for *_, label in expected[split_name]])
        for i, (_, channels, t_us, _) in enumerate(expected[split_name]):
            ref = fixtures.dense_reference(list(zip(t_us, channels)), (64,), 6, 50_000)
            np.testing.assert_array_equal(split.dense([i])[0], ref)
    # the hdf5 file was closed after loading (h5py would refuse a second writer otherwise)
    with h5py.File(tmp_path / "NTIDIGITS18" / "n-tidigits.hdf5", "a"):
        pass
    assert pickle.loads(pickle.dumps(split)).labels.tolist() == split.labels.tolist()


def test_shd_fixture_through_tonic(tmp_path):
    expected = {split: fixtures.write_shd(str(tmp_path), split, seed=i) for i, split in enumerate(("train", "test"))}
    binning = Binning(time_bins=9, bin_width_us=100_000, polarity=False)
    for split_name in ("train", "test"):
        split = data.load("shd", split_name, data_dir=str(tmp_path), binning=binning)
        assert split.frame_shape == (700,)
        np.testing.assert_array_equal(split.labels, [label for *_, label in expected[split_name]])
        for i, (channels, t_us, _) in enumerate(expected[split_name]):
            ref = fixtures.dense_reference(list(zip(t_us, channels)), (700,), 9, 100_000)
            np.testing.assert_array_equal(split.dense([i])[0], ref)
            assert ref.sum() > 0


def test_shd_download_md5_and_the_manual_routes(tmp_path, http_root, monkeypatch):
    www, base = http_root
    source = tmp_path / "source"
    written = fixtures.write_shd(str(source), "test", samples=5)
    with zipfile.ZipFile(www / "shd_test.h5.zip", "w") as archive:
        archive.write(source / "SHD" / "shd_test.h5", "shd_test.h5")
    md5 = hashlib.md5((www / "shd_test.h5.zip").read_bytes()).hexdigest()
    monkeypatch.setattr(shd.SHD, "archives", {"test": download.Archive(f"{base}/shd_test.h5.zip", "shd_test.h5.zip",
                                                                       md5)})
    assert len(data.load("shd", "test", data_dir=str(tmp_path / "data"))) == len(written)
    monkeypatch.setattr(shd.SHD, "archives", {"test": download.Archive(f"{base}/shd_test.h5.zip", "shd_test.h5.zip",
                                                                       "0" * 32)})
    with pytest.raises(download.DatasetDownloadError, match="by hand.*0{32}"):
        data.load("shd", "test", data_dir=str(tmp_path / "other"))
    # by hand: the authors' gzip file is decompressed and used (the train archive is not even looked for)
    manual = tmp_path / "manual" / "SHD"
    manual.mkdir(parents=True)
    with open(source / "SHD" / "shd_test.h5", "rb") as f, gzip.open(manual / "shd_train.h5.gz", "wb") as g:
        g.write(f.read())
    assert len(data.load("shd", "train", data_dir=str(tmp_path / "manual"))) == len(written)


def test_bad_shd_files_raise_errors_naming_the_file(tmp_path):
    fixtures.write_shd(str(tmp_path / "a"), "train")
    path = tmp_path / "a" / "SHD" / "shd_train.h5"
    with h5py.File(path, "a") as f:
        f["labels"][2] = 25
    with pytest.raises(ValueError, match=f"{path} sample 2: label 25 is outside 0-19"):
        data.load("shd", "train", data_dir=str(tmp_path / "a"))
    fixtures.write_shd(str(tmp_path / "b"), "train")
    path = tmp_path / "b" / "SHD" / "shd_train.h5"
    with open(path, "r+b") as f:
        f.truncate(300)  # a cut-off download
    with pytest.raises(ValueError, match=f"{path}: not a readable HDF5 file"):
        data.load("shd", "train", data_dir=str(tmp_path / "b"))


def test_bad_files_raise_errors_naming_the_file(tmp_path):
    root = str(tmp_path / "a")
    written = fixtures.write_nmnist(root)
    path = written[1][0]
    with open(path, "ab") as f:
        f.write(b"\x01\x02")  # truncated: not a multiple of 5 bytes
    with pytest.raises(ValueError, match=f"{path}: truncated"):
        data.load("nmnist", "train", data_dir=root)

    root = str(tmp_path / "b")
    written = fixtures.write_nmnist(root)
    with open(written[0][0], "wb") as f:
        f.write(fixtures.nmnist_bytes([40], [3], [5], [1]))  # x = 40 on a 34-pixel sensor
    with pytest.raises(ValueError, match=f"{written[0][0]}: event field 'x'"):
        data.load("nmnist", "train", data_dir=root)

    root = str(tmp_path / "c")
    written = fixtures.write_nmnist(root)
    open(written[2][0], "wb").close()  # empty sample
    with pytest.raises(ValueError, match=f"{written[2][0]}: sample has no events"):
        data.load("nmnist", "train", data_dir=root)

    root = str(tmp_path / "d")
    written = fixtures.write_dvs_gesture(root)
    np.save(written[0][0], np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"expected an \[N, 4\] array"):
        data.load("dvs_gesture", "train", data_dir=root)

    root = str(tmp_path / "e")
    fixtures.write_ntidigits(root)
    with h5py.File(os.path.join(root, "NTIDIGITS18", "n-tidigits.hdf5"), "a") as f:
        del f["test_timestamps/man-a1-z"]
    with pytest.raises(ValueError, match="5 test_labels for 5 test_addresses and 4 test_timestamps"):
        data.load("ntidigits18", "test", data_dir=root)
    with h5py.File(os.path.join(root, "NTIDIGITS18", "n-tidigits.hdf5"), "a") as f:  # same count, other id
        f["test_timestamps/man-a1-q"] = f["test_addresses/man-a1-z"][()] * 0.001
    with pytest.raises(ValueError, match="man-a1-z.*missing HDF5 key"):
        data.load("ntidigits18", "test", data_dir=root)
    with h5py.File(os.path.join(root, "NTIDIGITS18", "n-tidigits.hdf5"), "a") as f:
        del f["train_labels"]
    with pytest.raises(ValueError, match="n-tidigits.hdf5: missing HDF5 key"):
        data.load("ntidigits18", "train", data_dir=root)

    with pytest.raises(ValueError, match="unknown dataset 'mnist'.*digits_events"):
        data.load("mnist", "train")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_root(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_md5_and_extract_from_local_server(tmp_path, http_root, monkeypatch, capsys):
    www, base = http_root
    source = tmp_path / "source"
    written = fixtures.write_nmnist(str(source), split="test")
    with zipfile.ZipFile(www / "test.zip", "w") as archive:
        for path, *_ in written:
            archive.write(path, os.path.relpath(path, source / "NMNIST"))
    md5 = hashlib.md5((www / "test.zip").read_bytes()).hexdigest()
    monkeypatch.setattr(nmnist.NMNIST, "archives",
                        {"test": download.Archive(f"{base}/test.zip", "test.zip", md5)})
    target = tmp_path / "data"
    split = data.load("nmnist", "test", data_dir=str(target))
    assert len(split) == len(written)
    assert (target / "NMNIST" / "test.zip").exists()
    assert "Downloading" in capsys.readouterr().out  # progress output

    # a wrong md5: a clear error, and the corrupt file is not left behind
    monkeypatch.setattr(nmnist.NMNIST, "archives",
                        {"test": download.Archive(f"{base}/test.zip", "test.zip", "0" * 32)})
    other = tmp_path / "other"
    with pytest.raises(download.DatasetDownloadError) as error:
        data.load("nmnist", "test", data_dir=str(other))
    message = str(error.value)
    assert f"{base}/test.zip" in message and "0" * 32 in message and "by hand" in message
    assert str(other / "NMNIST" / "test.zip") in message
    assert not (other / "NMNIST" / "test.zip").exists()


def test_missing_archive_on_server_and_manual_placement(tmp_path, http_root, monkeypatch):
    www, base = http_root
    source = tmp_path / "source"
    written = fixtures.write_dvs_gesture(str(source))
    shutil.make_archive(str(tmp_path / "ibmGestureTrain"), "gztar", source / "DVSGesture", "ibmGestureTrain")
    archive_path = tmp_path / "ibmGestureTrain.tar.gz"
    md5 = hashlib.md5(archive_path.read_bytes()).hexdigest()
    monkeypatch.setattr(dvs_gesture.DVSGesture, "archives",
                        {"train": download.Archive(f"{base}/missing.tar.gz", "ibmGestureTrain.tar.gz", md5)})
    target = tmp_path / "data"
    with pytest.raises(download.DatasetDownloadError, match="missing.tar.gz.*by hand"):
        data.load("dvs_gesture", "train", data_dir=str(target))
    # the manual route: place the archive where the message says, and loading verifies and extracts it
    shutil.copy(archive_path, target / "DVSGesture" / "ibmGestureTrain.tar.gz")
    assert len(data.load("dvs_gesture", "train", data_dir=str(target))) == len(written)


def test_ntidigits_download_checks_md5(tmp_path, http_root, monkeypatch):
    www, base = http_root
    fixtures.write_ntidigits(str(tmp_path / "source"))
    shutil.copy(tmp_path / "source" / "NTIDIGITS18" / "n-tidigits.hdf5", www / "n-tidigits.hdf5")
    md5 = hashlib.md5((www / "n-tidigits.hdf5").read_bytes()).hexdigest()
    monkeypatch.setattr(ntidigits18.NTIDIGITS18, "archive",
                        download.Archive(f"{base}/n-tidigits.hdf5", "n-tidigits.hdf5", md5))
    assert len(data.load("ntidigits18", "train", data_dir=str(tmp_path / "data"))) == 4


def test_bin_events_against_loop_with_counts():
    rng = np.random.default_rng(0)
    x, y, t, p = fixtures.random_events(rng, 300, 16, 12, 9_000)
    events = np.zeros(300, [("x", int), ("y", int), ("t", int), ("p", int)])
    events["x"], events["y"], events["t"], events["p"] = x, y, t + 777, p
    for binarize in (True, False):
        binning = Binning(time_bins=5, bin_width_us=1_000, downsample=2, polarity=False, binarize=binarize)
        got = bin_events(events, (16, 12, 2), binning)
        flat = (y // 2) * 8 + x // 2
        ref = fixtures.dense_reference(list(zip(t + 777, flat)), (1, 6, 8), 5, 1_000, binarize)
        np.testing.assert_array_equal(got, ref)
    assert got.max() > 1  # counts mode really counts


@pytest.fixture(scope="module")
def digits(digits_data_dir):
    root = digits_data_dir
    return root, data.load("digits_events", "train", data_dir=root), data.load("digits_events", "test",
                                                                                 data_dir=root)


def test_digits_events_embedded_dataset(digits):
    root, train, test = digits
    assert (len(train), len(test)) == (1437, 360)
    assert set(np.unique(train.labels)) == set(range(10)) and set(np.unique(test.labels)) == set(range(10))
    assert 2000 < train.events.mean() < 10000  # NMNIST-like event counts
    assert np.all(train.duration_us <= 300_000)
    x = train.dense(np.arange(50))
    assert x.shape == (50, 30, 2, 34, 34) and 0.01 < x.mean() < 0.2
    assert x[:, :, 0].sum() > 0 and x[:, :, 1].sum() > 0  # OFF and ON events
    from spikejax.data import digits_events
    images, _ = digits_events._images()
    a, b = digits_events.simulate(images[:3], seed=5), digits_events.simulate(images[:3], seed=5)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not np.array_equal(a[0], digits_events.simulate(images[:3], seed=6)[0])
    assert not set(digits_events.split_indices("train")) & set(digits_events.split_indices("test"))


def test_cache_is_reused_and_keyed_by_config(digits, monkeypatch):
    root, train, _ = digits
    info = data.DATASETS["digits_events"]
    monkeypatch.setitem(data.DATASETS, "digits_events",
                        info.__class__(**{**info.__dict__, "samples": lambda *a, **k: 1 / 0}))
    again = data.load("digits_events", "train", data_dir=root)  # from cache: never calls samples
    assert again.path == train.path
    with pytest.raises(ZeroDivisionError):  # a changed config never reads the stale cache
        data.load("digits_events", "train", data_dir=root, binning=Binning(time_bins=31, bin_width_us=10_000))
    with pytest.raises(ZeroDivisionError):
        data.load("digits_events", "train", data_dir=root, seed=1)


def test_iterator_resumes_exactly_and_shuffles_per_epoch(digits):
    _, train, _ = digits
    batches = train.__len__() // 100
    it = data.TrainIterator(train, 100, seed=3)
    seen = [next(it) for _ in range(batches + 3)]  # crosses an epoch boundary
    state = seen[batches].next_state
    assert state == {"epoch": 1, "position": 1}
    resumed = data.TrainIterator(train, 100, seed=3, state=state)
    for expected in seen[batches + 1:]:
        got = next(resumed)
        np.testing.assert_array_equal(got.labels, expected.labels)
        np.testing.assert_array_equal(got.inputs, expected.inputs)
    assert seen[0].inputs.shape == (30, 100, 2, 34, 34)
    assert not np.array_equal(it.order(0), it.order(1))
    np.testing.assert_array_equal(it.order(1), data.TrainIterator(train, 100, seed=3).order(1))
    # each of 4 processes reads its own quarter of the same global batch
    parts = [next(data.TrainIterator(train, 100, seed=3, process_index=i, process_count=4)) for i in range(4)]
    np.testing.assert_array_equal(np.concatenate([p.labels for p in parts]), seen[0].labels)


def test_eval_counts_every_sample_once(digits):
    _, _, test = digits
    for count in (1, 2):
        labels, masks = [], []
        for index in range(count):
            for batch in data.eval_batches(test, 64, process_index=index, process_count=count):
                labels.append(batch.labels)
                masks.append(batch.mask)
        assert sum(m.sum() for m in masks) == len(test)
        assert all(len(m) == 64 // count for m in masks)
    batches = list(data.eval_batches(test, 64))
    got = np.concatenate([b.labels[b.mask > 0] for b in batches])
    np.testing.assert_array_equal(got, test.labels)


def test_prefetch_preserves_order_and_raises_errors(digits):
    _, _, test = digits
    direct = [b.labels for b in data.eval_batches(test, 64)]
    fetched = [b.labels for b in data.prefetch(data.eval_batches(test, 64))]
    assert all(np.array_equal(a, b) for a, b in zip(direct, fetched)) and len(direct) == len(fetched)

    def broken():
        yield from data.eval_batches(test, 64)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        list(data.prefetch(broken()))


def test_packed_batches_unpack_on_device_to_the_dense_batches(tmp_path):
    import jax
    import jax.numpy as jnp

    from spikejax.data.cache import CachedSplit
    from spikejax.data.device import unpack_spikes

    rng = np.random.default_rng(0)
    frame = (3, 5)  # 15 features: the last packed byte is partly padding
    dense = (rng.random((40, 7, 15)) < 0.3).astype(np.uint8)
    split = CachedSplit("toy", "train", np.packbits(dense, axis=-1), np.arange(40) % 4, np.zeros(40, np.int64),
                        np.zeros(40, np.int64), frame, 7, True, ["a", "b", "c", "d"], str(tmp_path))
    for state in [{"epoch": 0, "position": 1}, {"epoch": 2, "position": 0}]:
        plain = next(data.TrainIterator(split, 8, seed=5, state=state))
        packed = next(data.TrainIterator(split, 8, seed=5, state=state, packed=True))
        assert packed.inputs.shape == (7, 8, 2) and plain.inputs.shape == (7, 8, 3, 5)
        np.testing.assert_array_equal(np.asarray(jax.jit(unpack_spikes, static_argnums=1)(packed.inputs, frame)),
                                      plain.inputs)
        np.testing.assert_array_equal(packed.labels, plain.labels)
    evals = zip(data.eval_batches(split, 16), data.eval_batches(split, 16, packed=True))
    for plain, packed in evals:
        np.testing.assert_array_equal(unpack_spikes(jnp.asarray(packed.inputs), frame), plain.inputs)
        np.testing.assert_array_equal(packed.mask, plain.mask)


def test_validation_holdout_is_stratified_disjoint_and_machine_independent(digits):
    import hashlib

    from spikejax.data import split as split_lib

    _, train, _ = digits
    kept, held = split_lib.holdout(train.labels, 0.1)
    assert not set(kept) & set(held) and len(kept) + len(held) == len(train)
    for c in range(10):
        members = np.flatnonzero(train.labels == c)
        assert np.sum(train.labels[held] == c) == round(0.1 * len(members))
        # independent reference: the class's indices ordered by BLAKE2b of the documented string
        order = sorted(members, key=lambda i: hashlib.blake2b(f"spikejax-validation/0/{i}".encode(),
                                                              digest_size=8).digest())
        np.testing.assert_array_equal(np.sort(order[:round(0.1 * len(members))]), held[train.labels[held] == c])
    assert len(held) == 143
    assert held[:5].tolist() == split_lib.holdout(np.asarray(train.labels).copy(), 0.1)[1][:5].tolist()
    assert not set(split_lib.holdout(train.labels, 0.1, seed=1)[1]) == set(held)
    # a subset reads the same rows as the full split, without copying the memory map
    validation = train.subset(held)
    np.testing.assert_array_equal(validation.dense(np.arange(7)), train.dense(held[:7]))
    np.testing.assert_array_equal(validation.labels, train.labels[held])
    assert validation.spikes is train.spikes
    batch = next(data.TrainIterator(validation, 16, seed=0, packed=True))
    first = held[np.random.default_rng([0, 0]).permutation(len(held))[:16]]  # TrainIterator's epoch-0 order
    np.testing.assert_array_equal(batch.inputs.swapaxes(0, 1), train.packed_rows(first))
    np.testing.assert_array_equal(batch.labels, train.labels[first])
    with pytest.raises(ValueError, match="validation fraction"):
        split_lib.holdout(train.labels, 1.0)
