"""Data-layer faults of issue 20, each with the real thing: replaced source files, label/sample count
mismatches and float labels in real HDF5 files, truncated and pickled .npy files, a bad gzip, a hand-placed
archive with the wrong md5 (served from 127.0.0.1 only), and a full disk on a real 1 MiB tmpfs."""
import glob
import hashlib
import os
import subprocess
import sys
import zipfile

import h5py
import numpy as np
import pytest

from spikejax import data, errors
from spikejax.data import cache, download, nmnist
from tests import fixtures, test_data

no_internet = test_data.no_internet  # autouse: any connection other than to 127.0.0.1 fails
http_root = test_data.http_root  # a local HTTP server

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHD_BINNING = data.Binning(time_bins=9, bin_width_us=100_000, polarity=False)


def _shd_dense(expected):
    return np.stack([fixtures.dense_reference(list(zip(t_us, channels)), (700,), 9, 100_000)
                     for channels, t_us, _ in expected])


# ---------------------------------------------------------------------------------------------------------
# The cache follows the source files


def test_a_replaced_shd_file_is_read_afresh_and_an_unchanged_one_from_the_cache(tmp_path, monkeypatch):
    root = str(tmp_path)
    first = fixtures.write_shd(root, "train", seed=0)
    split = data.load("shd", "train", data_dir=root, binning=SHD_BINNING)
    np.testing.assert_array_equal(split.dense(np.arange(len(split))), _shd_dense(first))
    # unchanged: from the cache, the content hash remembered (nothing re-read)
    hashed = []
    real_hash = cache._content_hash
    monkeypatch.setattr(cache, "_content_hash", lambda path: hashed.append(path) or real_hash(path))
    assert data.load("shd", "train", data_dir=root, binning=SHD_BINNING).path == split.path and not hashed
    # replaced by another valid file (another seed: other spikes and labels)
    second = fixtures.write_shd(root, "train", seed=1)
    again = data.load("shd", "train", data_dir=root, binning=SHD_BINNING)
    assert again.path != split.path and len(hashed) == 1
    np.testing.assert_array_equal(again.labels, [label for *_, label in second])
    np.testing.assert_array_equal(again.dense(np.arange(len(again))), _shd_dense(second))


def _replace_keeping_size_and_mtime(path, content):
    """Writes `content` (same length) into `path` and sets its mtime back, as `cp -p` of another file would."""
    stat = os.stat(path)
    assert len(content) == stat.st_size
    with open(path, "wb") as f:
        f.write(content)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_nmnist_and_dvs_gesture_files_replaced_at_the_same_size_and_mtime_are_read_afresh(tmp_path):
    root = str(tmp_path)
    written = fixtures.write_nmnist(root)
    binning = data.Binning(time_bins=8, bin_width_us=5_000)
    before = data.load("nmnist", "train", data_dir=root, binning=binning)
    path, (x, y, t, p), label = written[0]
    x = (x + 1) % 34
    _replace_keeping_size_and_mtime(path, fixtures.nmnist_bytes(x, y, t, p))
    after = data.load("nmnist", "train", data_dir=root, binning=binning)
    assert after.path != before.path
    flat = (p * 34 + y) * 34 + x
    np.testing.assert_array_equal(after.dense([0])[0].reshape(8, -1),
                                  fixtures.dense_reference(list(zip(t, flat)), (2, 34, 34), 8, 5_000))

    written = fixtures.write_dvs_gesture(root)
    binning = data.Binning(time_bins=10, bin_width_us=20_000, downsample=4)
    before = data.load("dvs_gesture", "train", data_dir=root, binning=binning)
    path, (x, y, t_us, p), _ = written[0]
    array = np.load(path)
    array[:, 0] = 127 - array[:, 0]
    with open(path + ".new", "wb") as f:
        np.save(f, array)
    _replace_keeping_size_and_mtime(path, open(path + ".new", "rb").read())
    os.remove(path + ".new")
    after = data.load("dvs_gesture", "train", data_dir=root, binning=binning)
    assert after.path != before.path
    flat = (p * 32 + y // 4) * 32 + (127 - x) // 4
    np.testing.assert_array_equal(after.dense([0])[0].reshape(10, -1),
                                  fixtures.dense_reference(list(zip(t_us, flat)), (2, 32, 32), 10, 20_000))


def test_a_replaced_ntidigits_file_is_read_afresh(tmp_path):
    root = str(tmp_path)
    binning = data.Binning(time_bins=6, bin_width_us=50_000, polarity=False)
    fixtures.write_ntidigits(root, seed=0)
    before = data.load("ntidigits18", "train", data_dir=root, binning=binning)
    expected = fixtures.write_ntidigits(root, seed=1)
    after = data.load("ntidigits18", "train", data_dir=root, binning=binning)
    assert after.path != before.path
    for i, (_, channels, t_us, _) in enumerate(expected["train"]):
        np.testing.assert_array_equal(after.dense([i])[0],
                                      fixtures.dense_reference(list(zip(t_us, channels)), (64,), 6, 50_000))


# ---------------------------------------------------------------------------------------------------------
# Labels and samples that do not match


def _rewrite(path, key, values):
    with h5py.File(path, "a") as f:
        del f[key]
        f.create_dataset(key, data=values)


def test_shd_label_count_mismatch_and_float_labels_are_data_errors(tmp_path):
    root = str(tmp_path)
    fixtures.write_shd(root, "train", samples=6)
    path = os.path.join(root, "SHD", "shd_train.h5")
    labels = np.asarray(h5py.File(path, "r")["labels"][()])
    _rewrite(path, "labels", labels[:4])
    with pytest.raises(errors.DataError, match=f"{path}: 4 labels for 6 samples"):
        data.load("shd", "train", data_dir=root, binning=SHD_BINNING)
    _rewrite(path, "labels", np.array([1.0, 2.5, 3.0, 4.0, 7.75, 0.0], np.float32))
    with pytest.raises(errors.DataError, match=r"whole numbers; samples \[1, 4\] have labels \[2.5, 7.75\]"):
        data.load("shd", "train", data_dir=root, binning=SHD_BINNING)
    _rewrite(path, "labels", labels.astype(np.float32))  # whole numbers stored as floats: read as they are
    split = data.load("shd", "train", data_dir=root, binning=SHD_BINNING)
    np.testing.assert_array_equal(split.labels, labels)
    with h5py.File(path, "a") as f:  # one sample with fewer channels than spike times
        f["spikes/units"][2] = f["spikes/units"][2][:-1]
    with pytest.raises(errors.DataError, match=f"{path} sample 2: (\\d+) spike times for (\\d+) channels"):
        data.load("shd", "train", data_dir=root, binning=SHD_BINNING)


def test_ntidigits_count_mismatch_and_unknown_labels_are_data_errors(tmp_path):
    root = str(tmp_path)
    fixtures.write_ntidigits(root)
    path = os.path.join(root, "NTIDIGITS18", "n-tidigits.hdf5")
    with h5py.File(path, "a") as f:
        f["train_addresses/extra-1"] = np.zeros(3, np.int16)
    with pytest.raises(errors.DataError, match=f"{path}: 5 train_labels for 6 train_addresses and 5 "):
        data.load("ntidigits18", "train", data_dir=root)
    fixtures.write_ntidigits(root)
    with h5py.File(path, "a") as f:
        ids = [s.decode() for s in f["train_labels"][()]]
        ids[1] = "man-a1-x"  # a single-character label that is no digit class
        del f["train_labels"]
        f["train_labels"] = np.array([s.encode() for s in ids])
        f.move("train_addresses/man-a1-z", "train_addresses/man-a1-x")
        f.move("train_timestamps/man-a1-z", "train_timestamps/man-a1-x")
    with pytest.raises(errors.DataError, match=r"1 train sample ids end in no digit class.*man-a1-x"):
        data.load("ntidigits18", "train", data_dir=root)
    fixtures.write_ntidigits(root)
    with h5py.File(path, "a") as f:
        _ = f["test_addresses/man-a0-o"][()]
        del f["test_addresses/man-a0-o"]
        f["test_addresses/man-a0-o"] = np.zeros(3, np.int16)
    with pytest.raises(errors.DataError, match="man-a0-o'.*3 addresses for 40 timestamps"):
        data.load("ntidigits18", "test", data_dir=root)


# ---------------------------------------------------------------------------------------------------------
# Corrupt files: DataErrors naming the file and what to do


def test_corrupt_source_files_are_data_errors_naming_the_file(tmp_path):
    root = str(tmp_path / "tidigits")
    fixtures.write_ntidigits(root)
    path = os.path.join(root, "NTIDIGITS18", "n-tidigits.hdf5")
    os.truncate(path, 500)
    with pytest.raises(errors.DataError, match=f"{path}: not a readable HDF5 file.*delete it and rerun"):
        data.load("ntidigits18", "train", data_dir=root)

    root = str(tmp_path / "dvs")
    written = fixtures.write_dvs_gesture(root)
    path = written[1][0]
    os.truncate(path, os.path.getsize(path) - 100)
    with pytest.raises(errors.DataError, match=f"{path}: not a readable numeric .npy file.*extract it again"):
        data.load("dvs_gesture", "train", data_dir=root)
    np.save(path, np.array([{"x": 1}, None], dtype=object))  # a pickled object array
    with pytest.raises(errors.DataError, match=f"{path}: not a readable numeric .npy file"):
        data.load("dvs_gesture", "train", data_dir=root)
    with open(path, "wb") as f:
        f.write(b"<html>not found</html>")
    with pytest.raises(errors.DataError, match=f"{path}: not a readable numeric .npy file"):
        data.load("dvs_gesture", "train", data_dir=root)

    root = tmp_path / "gz"
    (root / "SHD").mkdir(parents=True)
    gz = root / "SHD" / "shd_train.h5.gz"
    gz.write_bytes(b"\x1f\x8b\x08\x00garbage, not deflate data" * 10)
    with pytest.raises(errors.DataError, match=f"{gz} is not a complete gzip file"):
        data.load("shd", "train", data_dir=str(root))
    assert gz.exists() and os.listdir(root / "SHD") == ["shd_train.h5.gz"]  # kept; no partial file


def test_unreadable_cache_arrays_are_rebuilt_with_a_warning_naming_them(tmp_path, capsys):
    root = str(tmp_path)
    fixtures.write_nmnist(root)
    binning = data.Binning(time_bins=8, bin_width_us=5_000)
    good = data.load("nmnist", "train", data_dir=root, binning=binning)
    reference = good.dense(np.arange(len(good))).copy()
    labels = os.path.join(good.path, "labels.npy")
    np.save(labels, np.array(list(good.labels), dtype=object))  # pickled, checksums updated to match
    import json

    meta = json.load(open(os.path.join(good.path, "meta.json")))
    meta["files"]["labels.npy"] = {"bytes": os.path.getsize(labels), "crc32": cache.file_crc32(labels)}
    json.dump(meta, open(os.path.join(good.path, "meta.json"), "w"))
    again = data.load("nmnist", "train", data_dir=root, binning=binning)
    assert f"cache {good.path} is damaged: labels.npy cannot be read" in capsys.readouterr().err
    np.testing.assert_array_equal(again.dense(np.arange(len(again))), reference)


@pytest.mark.slow
def test_a_truncated_shd_file_ends_the_program_with_one_line_and_exit_1(tmp_path):
    root = str(tmp_path)
    fixtures.write_shd(root, "train")
    path = os.path.join(root, "SHD", "shd_train.h5")
    os.truncate(path, 300)
    out = subprocess.run([sys.executable, "-m", "experiments.inspect_data", "--dataset=shd", f"--data_dir={root}",
                          f"--out={tmp_path / 'x.png'}"], cwd=REPO, capture_output=True, text=True, timeout=300)
    lines = [line for line in out.stderr.splitlines() if line.strip() and not line.startswith("WARNING: All log")]
    assert out.returncode == 1, out.stderr[-3000:]
    assert len(lines) == 1 and path in lines[0] and "not a readable HDF5 file" in lines[0], out.stderr[-3000:]


# ---------------------------------------------------------------------------------------------------------
# A hand-placed archive with the wrong md5


def _nmnist_archive(tmp_path, www, name="test.zip"):
    source = tmp_path / "source"
    written = fixtures.write_nmnist(str(source), split="test")
    with zipfile.ZipFile(www / name, "w") as archive:
        for path, *_ in written:
            archive.write(path, os.path.relpath(path, source / "NMNIST"))
    return written, hashlib.md5((www / name).read_bytes()).hexdigest()


def test_a_hand_placed_archive_with_the_wrong_md5_is_moved_aside_never_deleted(tmp_path, http_root, monkeypatch):
    www, base = http_root
    written, md5 = _nmnist_archive(tmp_path, www)
    monkeypatch.setattr(nmnist.NMNIST, "archives", {"test": download.Archive(f"{base}/test.zip", "test.zip", md5)})
    placed = tmp_path / "data" / "NMNIST" / "test.zip"
    placed.parent.mkdir(parents=True)
    content = (www / "test.zip").read_bytes()[:-50]  # a cut-off copy, placed by hand
    placed.write_bytes(content)
    actual = hashlib.md5(content).hexdigest()
    with pytest.raises(download.DatasetDownloadError) as error:
        data.load("nmnist", "test", data_dir=str(tmp_path / "data"))
    message = str(error.value)
    aside = placed.parent / f"test.zip.bad-md5-{actual}"
    assert actual in message and md5 in message and str(aside) in message
    assert "download" not in message.split("Put a complete copy")[0].lower()  # no blame on the network
    assert aside.read_bytes() == content and not placed.exists()
    # the rerun the message suggests downloads a good copy; the user's file stays where it was moved
    assert len(data.load("nmnist", "test", data_dir=str(tmp_path / "data"))) == len(written)
    assert aside.read_bytes() == content


# ---------------------------------------------------------------------------------------------------------
# A full disk: a real 1 MiB tmpfs


@pytest.fixture
def small_filesystem(tmp_path):
    """A real 1 MiB tmpfs (needs root, as CI runs); skipped where mounting is not allowed."""
    mount = tmp_path / "small"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _leftovers(folder):
    return [p for p in glob.glob(os.path.join(folder, "**", "*"), recursive=True) + glob.glob(
        os.path.join(folder, "**", ".*"), recursive=True) if ".partial" in p or ".tmp-" in p or ".extract-" in p]


def test_full_disk_while_building_the_cache(tmp_path, small_filesystem):
    root = str(tmp_path / "data")
    fixtures.write_nmnist(root)
    binning = data.Binning(time_bins=3000, bin_width_us=20)  # 6 x 3000 x 289 bytes: 5 MiB > 1 MiB
    with pytest.raises(errors.DiskFullError) as error:
        data.load("nmnist", "train", data_dir=root, binning=binning, cache_dir=str(small_filesystem))
    message = str(error.value)
    assert str(small_filesystem) in message and "needs about 5.0 MiB" in message, message
    assert _leftovers(str(small_filesystem)) == [] and not [d for d in os.listdir(small_filesystem)
                                                              if d.startswith("nmnist-")]


def test_full_disk_while_downloading_and_extracting(tmp_path, http_root, small_filesystem, monkeypatch):
    www, base = http_root
    big = np.random.default_rng(0).integers(0, 256, 3 << 20, dtype=np.uint8).tobytes()  # incompressible
    (www / "big.zip").write_bytes(big)
    monkeypatch.setattr(nmnist.NMNIST, "archives",
                        {"test": download.Archive(f"{base}/big.zip", "test.zip", hashlib.md5(big).hexdigest())})
    root = small_filesystem / "download"
    with pytest.raises(errors.DiskFullError) as error:
        data.load("nmnist", "test", data_dir=str(root))
    message = str(error.value)
    assert str(root / "NMNIST" / "test.zip") in message and "needs 3.0 MiB" in message, message
    assert _leftovers(str(small_filesystem)) == [] and os.listdir(root / "NMNIST") == []

    # extraction: a small archive of a 3 MiB file of zeros
    with zipfile.ZipFile(www / "zeros.zip", "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("Test/0/00000.bin", bytes(3 << 20))
    md5 = hashlib.md5((www / "zeros.zip").read_bytes()).hexdigest()
    monkeypatch.setattr(nmnist.NMNIST, "archives", {"test": download.Archive(f"{base}/zeros.zip", "test.zip", md5)})
    root = small_filesystem / "extract"
    with pytest.raises(errors.DiskFullError) as error:
        data.load("nmnist", "test", data_dir=str(root))
    message = str(error.value)
    assert str(root / "NMNIST") in message and "needs 3.0 MiB" in message, message
    assert _leftovers(str(small_filesystem)) == [] and os.listdir(root / "NMNIST") == ["test.zip"]
