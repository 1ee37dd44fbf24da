"""The official CIFAR-10 release (source='cifar'): reading its pickle batches, the download
into the cache with its MD5 check, and a clear line for every bad file.

The real download cannot run here: the release's one table entry (`cifar.RELEASES`) is
pointed at a tarball the test writes in the official layout, served from a file:// URL.
"""
import dataclasses
import errno
import hashlib
import http.client
import io
import os
import pickle
import socket
import struct
import subprocess
import tarfile

import numpy as np
import pytest

from relgraph_jax import data
from relgraph_jax.data import cifar, fingerprint, summary
from relgraph_jax.data.testing import mock_tfds

CLASSES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse",
           b"ship", b"truck"]
PER_BATCH, NUM_TEST = 3, 4


class _Python2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 wrote its str, with the BINSTRING opcodes of the release's
    pickles (Python 3's protocol 2 writes them as calls of _codecs.encode instead)."""

    def save_bytes(self, obj):
        size = len(obj)
        self.write(pickle.SHORT_BINSTRING + bytes([size]) if size < 256 else
                   pickle.BINSTRING + struct.pack("<i", size))
        self.write(obj)
        self.memoize(obj)

    dispatch = {**pickle._Pickler.dispatch, bytes: save_bytes}


def _python2_pickle(obj) -> bytes:
    """`obj` pickled as the release's Python 2 batches are: protocol 2, byte strings, and
    numpy's array helper under its Python 2 era module name, numpy.core.multiarray."""
    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump(obj)
    blob = buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    assert b"_codecs" not in blob and b"numpy._core" not in blob
    return blob


def _batch(images: np.ndarray, labels: list[int]) -> bytes:
    """A batch as the release stores it: byte-string keys, channel-major rows."""
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    return _python2_pickle({b"batch_label": b"batch", b"labels": labels, b"data": rows,
                            b"filenames": [b"x.png"] * len(labels)})


def _tar_gz(path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as archive:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            archive.addfile(info, io.BytesIO(blob))


def _md5(path) -> str:
    return hashlib.md5(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """(tarball path, train images, train labels, test images, test labels)."""
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (5 * PER_BATCH, 32, 32, 3), dtype=np.uint8)
    y_train = (np.arange(5 * PER_BATCH) * 7 % 10).tolist()
    x_test = rng.integers(0, 256, (NUM_TEST, 32, 32, 3), dtype=np.uint8)
    y_test = [9, 0, 3, 3]
    folder = "cifar-10-batches-py"
    members = {f"{folder}/data_batch_{i + 1}": _batch(x_train[i * PER_BATCH:(i + 1) * PER_BATCH],
                                                       y_train[i * PER_BATCH:(i + 1) * PER_BATCH])
               for i in range(5)}
    members[f"{folder}/test_batch"] = _batch(x_test, y_test)
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in members[f"{folder}/test_batch"]
    members[f"{folder}/batches.meta"] = _python2_pickle(
        {b"label_names": CLASSES, b"num_cases_per_batch": PER_BATCH, b"num_vis": 3072})
    members[f"{folder}/readme.html"] = b"<html></html>"
    path = tmp_path_factory.mktemp("release") / "cifar-10-python.tar.gz"
    _tar_gz(path, members)
    return path, x_train, np.array(y_train), x_test, np.array(y_test)


@pytest.fixture
def published(release, monkeypatch):
    """Points the release's table entry at the test's tarball; returns that entry."""
    path = release[0]
    entry = dataclasses.replace(cifar.RELEASES["cifar10"], url=path.as_uri(), md5=_md5(path),
                                size=os.path.getsize(path), num_train=5 * PER_BATCH,
                                num_test=NUM_TEST)
    monkeypatch.setitem(cifar.RELEASES, "cifar10", entry)
    return entry


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _cfg(**fields):
    return {"source": "cifar", "name": "cifar10", **fields}


def test_the_table_holds_the_published_release():
    entry = cifar.RELEASES["cifar10"]
    assert entry.url == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert entry.md5 == "c58f30108f718f92721af3b95e74349a"
    assert (entry.filename, entry.num_train, entry.num_test) == (
        "cifar-10-python.tar.gz", 50_000, 10_000)


def test_first_use_downloads_into_the_cache_and_reads_the_batches(release, published, tmp_path):
    path, x_train, y_train, x_test, y_test = release
    cache = tmp_path / "cache"
    cache.mkdir()
    host = socket.gethostname().replace("-", "_")  # a killed run's part: HOST-PID-...
    stale = cache / f".cifar-10-python.tar.gz.{host}-{_dead_pid()}-x.part"
    stale.write_bytes(b"half of a download that was killed")
    ds = data.load(_cfg(cache_dir=str(cache)))
    assert sorted(os.listdir(cache)) == ["cifar-10-python.tar.gz"]  # no temporary file left
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(cache / "cifar-10-python.tar.gz").st_mode & 0o777 == 0o666 & ~umask
    assert _md5(cache / "cifar-10-python.tar.gz") == published.md5
    np.testing.assert_array_equal(ds.x_train, x_train)  # channel-major rows -> NHWC
    np.testing.assert_array_equal(ds.y_train, y_train)
    np.testing.assert_array_equal(ds.x_test, x_test)
    np.testing.assert_array_equal(ds.y_test, y_test)
    assert (ds.num_classes, ds.y_train.dtype, ds.name) == (10, np.int32, "cifar10")
    np.testing.assert_allclose(ds.mean, [125.3, 123.0, 113.9], rtol=1e-6)  # the paper's
    # A second use reads the cached file: nothing is fetched again.
    def refuse(url, out):
        raise AssertionError("fetched twice")
    spec = data.parse(_cfg(cache_dir=str(cache)))
    assert cifar.ensure_tarball(spec, fetch=refuse) == str(cache / "cifar-10-python.tar.gz")


def test_a_downloaded_tarball_given_as_path_is_read_in_place(release, published, tmp_path):
    ds = data.load(_cfg(path=str(release[0]), cache_dir=str(tmp_path / "unused")))
    np.testing.assert_array_equal(ds.x_test, release[3])
    assert not (tmp_path / "unused").exists()
    facts = summary.summarize(data.validate(_cfg(path=str(release[0]))))
    assert (facts.image_shape, facts.num_train, facts.num_test, facts.declared_classes) == (
        (32, 32, 3), 15, 4, 10)
    assert fingerprint.fingerprint(data.parse(_cfg(path=str(release[0])))) == {
        "source": "cifar", "name": "cifar10", "md5": published.md5}


def test_a_download_with_another_md5_is_refused_and_not_kept(published, monkeypatch, tmp_path):
    monkeypatch.setitem(cifar.RELEASES, "cifar10",
                        dataclasses.replace(published, md5="0" * 32, size=10 ** 9))
    cache = tmp_path / "cache"
    with pytest.raises(ValueError) as info:
        data.validate(_cfg(cache_dir=str(cache)))
    message = str(info.value)
    assert f"the downloaded file '{cache}/" in message
    assert f"has MD5 {published.md5}, not the published {'0' * 32}" in message
    assert "(truncated?)" in message and "rerun to download it again" in message
    assert os.listdir(cache) == []


def test_a_failed_download_says_so_and_leaves_nothing(published, monkeypatch, tmp_path):
    missing = (tmp_path / "nowhere.tar.gz").as_uri()
    monkeypatch.setitem(cifar.RELEASES, "cifar10", dataclasses.replace(published, url=missing))
    cache = tmp_path / "cache"
    with pytest.raises(data.DataNotFoundError, match=f"could not download {missing} "):
        data.validate(_cfg(cache_dir=str(cache)))
    assert os.listdir(cache) == []

    def half_then_fail(url, out):
        out.write(b"x" * 100)
        raise ConnectionResetError(104, "Connection reset by peer")
    spec = data.parse(_cfg(cache_dir=str(cache)))
    with pytest.raises(data.DataNotFoundError, match=r"\(ConnectionResetError: Connection reset "
                                                     r"by peer\); rerun to retry"):
        cifar.ensure_tarball(spec, fetch=half_then_fail)

    def bad_status(url, out):
        raise http.client.BadStatusLine("HTTP/1.1 ???")
    with pytest.raises(data.DataNotFoundError, match=r"\(BadStatusLine: "):
        cifar.ensure_tarball(spec, fetch=bad_status)

    def disk_full(url, out):
        out.write(b"x" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(ValueError, match=r"could not write the download into data.cache_dir "
                                         r".* \(No space left on device\): free space there"):
        cifar.ensure_tarball(spec, fetch=disk_full)
    assert os.listdir(cache) == []


def test_an_unwritable_cache_is_named(published, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError, match=f"data.cache_dir '{blocker}/sub' is not writable"):
        data.validate(_cfg(cache_dir=str(blocker / "sub")))


@pytest.mark.parametrize("case", ["missing", "truncated", "other data set", "damaged cache"])
def test_bad_files_get_one_clear_line(case, release, published, tmp_path):
    bad = tmp_path / "cifar-10-python.tar.gz"
    if case == "missing":
        cfg, expected = _cfg(path=str(bad)), f"data.path='{bad}' not found"
    elif case == "truncated":
        bad.write_bytes(release[0].read_bytes()[:4000])
        cfg, expected = _cfg(path=str(bad)), (
            f"data.path '{bad}' has MD5 {_md5(bad)}, not the published {published.md5} of "
            f"cifar-10-python.tar.gz; it has 4,000 bytes, the official file "
            f"{published.size:,} (truncated?): give the official cifar-10-python.tar.gz")
    elif case == "other data set":
        _tar_gz(bad, {"cifar-100-python/train": b"", "cifar-100-python/test": b""})
        cfg, expected = _cfg(path=str(bad)), "has MD5"
    else:  # a file in the cache that is not the release
        bad.write_bytes(b"not a tarball")
        cfg, expected = _cfg(cache_dir=str(tmp_path)), (
            f"the cached file '{bad}' has MD5 {_md5(bad)}")
    with pytest.raises(ValueError) as info:
        data.validate(cfg)
    assert expected in str(info.value) and "\n" not in str(info.value)
    if case == "damaged cache":
        assert "delete it and rerun to download it again" in str(info.value)
        assert bad.read_bytes() == b"not a tarball"  # a user's file is never deleted


@pytest.mark.parametrize("case, expected", [
    ("truncated", "is not a readable tar.gz"),
    ("other data set", "is not cifar-10-python.tar.gz: it lacks ['cifar-10-batches-py/"),
    ("no pickle", "member cifar-10-batches-py/batches.meta is not a CIFAR batch"),
    ("short rows", "'data' must be uint8 rows of 3072 pixels, got uint8 (3, 3000)"),
])
def test_the_reader_names_what_is_wrong_inside(case, expected, release, published, monkeypatch,
                                               tmp_path):
    """With the table's MD5 made to match a bad file, the reader itself explains it."""
    bad = tmp_path / "bad.tar.gz"
    folder = "cifar-10-batches-py"
    names = [f"{folder}/data_batch_{i}" for i in range(1, 6)] + [
        f"{folder}/test_batch", f"{folder}/batches.meta"]
    if case == "truncated":
        bad.write_bytes(release[0].read_bytes()[:-500])
    elif case == "other data set":
        _tar_gz(bad, {"cifar-100-python/train": b"", "cifar-100-python/meta": b""})
    elif case == "no pickle":
        _tar_gz(bad, {name: b"plain text" for name in names})
    else:
        short = pickle.dumps({b"data": np.zeros((3, 3000), np.uint8), b"labels": [0, 1, 2]},
                             protocol=2)
        meta = pickle.dumps({b"label_names": CLASSES}, protocol=2)
        _tar_gz(bad, {**{name: short for name in names[:-1]}, names[-1]: meta})
    monkeypatch.setitem(cifar.RELEASES, "cifar10", dataclasses.replace(published, md5=_md5(bad)))
    with pytest.raises(ValueError) as info:
        data.load(_cfg(path=str(bad)))
    assert expected in str(info.value) and "\n" not in str(info.value)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_batch_that_would_run_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blob = pickle.dumps({b"data": _Exploit()}, protocol=2)
    with pytest.raises(ValueError, match=r"global '(posix|nt)\.system' is not allowed"):
        cifar.unpickle(blob, "member x")
    assert not (tmp_path / "pwned").exists()
    # What the format holds comes back, str keys and all.
    batch = cifar.unpickle(pickle.dumps({b"labels": [1, 2], b"data": np.arange(3, dtype=np.uint8)},
                                        protocol=2), "member y")
    assert batch["labels"] == [1, 2] and batch["data"].tolist() == [0, 1, 2]


def test_cache_dir_belongs_to_the_cifar_source_only(monkeypatch):
    with pytest.raises(ValueError, match="data.cache_dir='/c' is only used with source='cifar'"):
        data.parse({"source": "digits", "cache_dir": "/c"})
    with pytest.raises(ValueError, match=r"name='cifar100'; allowed: \['cifar10'\]"):
        data.parse({"source": "cifar", "name": "cifar100"})
    with pytest.raises(ValueError, match=r"did you mean source='cifar', name='cifar10'"):
        data.parse({"source": "cifar10"})
    monkeypatch.setenv("XDG_CACHE_HOME", "/x/cache")
    assert cifar.default_cache_dir() == "/x/cache/relgraph_jax"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", "/home/u")
    assert cifar.default_cache_dir() == "/home/u/.cache/relgraph_jax"


def test_the_cifar10_config_reads_tfds_when_asked():
    """tfds stays an option: the config's data block with source=tfds, under tfds's mock."""
    from experiments.configs import mlp_cifar10
    block = mlp_cifar10.get_config().data
    block.source = "tfds"
    with mock_tfds(num_examples=5):
        ds = data.load(block)
    assert ds.x_train.shape == (5, 32, 32, 3) and ds.num_classes == 10
