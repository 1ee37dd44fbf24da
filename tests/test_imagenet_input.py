"""Streamed ImageNet input: image folders, grain workers, one share per process, resume.

One tiny sweep (a 16x16 MLP on a generated 3-class image folder, 2 epochs of 3 steps) run
in one process on 4 devices is the reference: two jax.distributed processes of 2 devices
each, and a run stopped mid-epoch and resumed, must write exactly its records, and the
two processes together must decode exactly the examples it decodes. Batches are compared
bitwise for 0, 1 and 2 worker processes, and against numpy/Pillow references; a Ctrl-C
must not kill the worker processes.
"""
import collections
import glob
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time

import types

import jax
import ml_collections
import numpy as np
import pytest
from PIL import Image

from benchmarks.chaos import process_alive
from experiments.configs import common
from relgraph_jax import data, results
from relgraph_jax.data import imagenet, imagefolder, spec as spec_lib, stream as stream_lib
from relgraph_jax.data.testing import write_image_folder
from relgraph_jax.train import feeds, trainer
from relgraph_jax.train import workdir as workdir_lib
from helpers import fast_trainer_compiles, free_port, imagenet_train_image, run_two_processes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES = ("cat", "dog", "fox")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """3 classes x (4 train, 2 val) photo-like 20x28 images, JPEG and PNG in turn."""
    return write_image_folder(tmp_path_factory.mktemp("images") / "pets", classes=CLASSES,
                              per_class=(4, 2), shape=(20, 28))


def folder_data(path, **fields) -> dict:
    """A data block for the image folder at `path`: 16x16 crops, decoded in this process."""
    return {"source": "imagefolder", "path": str(path), "image_size": 16, "workers": 0, **fields}


# ---- layout and classes ----------------------------------------------------------------
def _touch_images(root, paths, size=(4, 4)):
    for rel in paths:
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fmt = "PNG" if path.lower().endswith(".png") else "JPEG"
        Image.fromarray(np.full(size + (3,), 90, np.uint8)).save(path, format=fmt)


def test_classes_are_sorted_folder_names_and_files_follow_torchvision(tmp_path):
    """As torchvision's ImageFolder: classes sorted by name, files sorted (nested folders
    too: class a10 holds its image one folder down), only .jpg/.jpeg/.png of any case;
    other files are ignored."""
    names = ["b/2.jpg", "b/10.JPG", "b/sub/1.png", "B/x.jpeg", "a10/deep/y.png", "a2/z.jpg"]
    _touch_images(tmp_path / "train", names)
    _touch_images(tmp_path / "val", ["b/v.jpg", "B/v.jpg", "a10/v.jpg", "a2/v.jpg"])
    (tmp_path / "train" / "b" / "notes.txt").write_text("not an image")
    spec = data.validate(folder_data(tmp_path))
    assert spec.streaming and spec.name == tmp_path.name and spec.test_split == "val"
    classes = imagefolder.validate(spec)
    assert classes == ("B", "a10", "a2", "b")
    split = imagefolder.FolderSplit(spec, "train", classes)
    assert split.files.tolist() == [b"B/x.jpeg", b"a10/deep/y.png", b"a2/z.jpg", b"b/10.JPG",
                                    b"b/2.jpg", b"b/sub/1.png"]
    assert split.labels.tolist() == [0, 1, 2, 3, 3, 3]
    example = split[5]
    assert example["image"].mode == "RGB" and example["image"].size == (4, 4)
    assert example["label"] == 3


def _layout(root, case):
    """A small folder with one thing wrong; returns the data fields that point at it."""
    good = ["cat/1.jpg", "dog/1.png"]
    if case == "missing folder":
        return folder_data(root / "nowhere")
    _touch_images(root / "train", good)
    if case == "missing val":
        return folder_data(root)
    if case == "no class folders":
        _touch_images(root / "val", ["1.jpg", "2.jpg"])
    elif case == "empty class":
        _touch_images(root / "val", ["cat/1.jpg"])
        os.makedirs(root / "val" / "dog")
        (root / "val" / "dog" / "readme.txt").write_text("no images here")
    elif case == "class mismatch":
        _touch_images(root / "val", ["cat/1.jpg", "cow/1.jpg"])
    elif case == "other split names":
        _touch_images(root / "val", good)
        return folder_data(root, train_split="training", test_split="val")
    return folder_data(root)


@pytest.mark.parametrize("case, error, message", [
    ("missing folder", data.DataNotFoundError, r"data.path='.*nowhere' is not a folder; "
                                               r"source='imagefolder' needs PATH/SPLIT/CLASS"),
    ("missing val", data.DataNotFoundError, r"has no 'val' folder \(data.test_split\); its "
                                            r"subfolders: \['train'\]"),
    ("other split names", data.DataNotFoundError, r"has no 'training' folder \(data.train_split\)"),
    ("no class folders", ValueError, r"val' has no class subfolders \(its images must go into "
                                     r"one subfolder per class\)"),
    ("empty class", ValueError, r"class folder '.*val/dog' holds no image \(.jpg, .jpeg, .png\)"),
    ("class mismatch", ValueError, r"must hold the same classes; only in 'train': \['dog'\], "
                                   r"only in 'val': \['cow'\]"),
])
def test_each_bad_layout_gets_its_error_before_anything_runs(case, error, message, tmp_path):
    fields = _layout(tmp_path, case)
    with pytest.raises(error, match=message):
        data.validate(fields)
    # The trainer checks the layout first: nothing is compiled or written.
    config = _sweep_config(fields["path"], **{k: v for k, v in fields.items()
                                              if k in ("train_split", "test_split")})
    with pytest.raises(error, match=message):
        trainer.train_and_evaluate(config, str(tmp_path / "workdir"))
    assert not os.path.exists(tmp_path / "workdir" / workdir_lib.CONFIG_FILE)


def test_files_that_are_not_images_are_refused_before_anything_runs(tmp_path):
    """A fake JPEG, an empty PNG and a dangling link are found from their headers when the
    data is validated (before the workdir is written); a file whose header is fine but
    whose data is cut short is named when it is decoded."""
    broken = tmp_path / "broken"
    write_image_folder(broken, classes=("a", "b"), per_class=(3, 1), shape=(8, 8))
    fake, empty, cut = sorted(glob.glob(str(broken / "train" / "b" / "*")))
    with open(fake, "wb") as f:
        f.write(b"\xff\xd8 not really a JPEG")
    open(empty, "wb").close()
    link = broken / "train" / "a" / "zz_link.png"
    os.symlink(tmp_path / "gone.png", link)
    with pytest.raises(ValueError) as info:
        data.validate(folder_data(broken))
    message = str(info.value)
    assert message.startswith(f"3 of the 7 images in '{broken / 'train'}' cannot be opened: ")
    for path in (fake, empty, str(link)):
        assert f"'{path}' (" in message
    assert message.endswith("Remove or replace them (or mend the links) and rerun; nothing "
                            "was written")
    for path in (fake, empty, str(link)):
        os.remove(path)
    for cached in (imagefolder.validate, imagefolder.listing, imagefolder.check_headers):
        cached.cache_clear()  # a later process sees the mended folder
    blob = open(cut, "rb").read()
    with open(cut, "wb") as f:
        f.write(blob[:-12])  # the header survives, the end of the pixels does not
    stream = data.open_stream(folder_data(broken))
    with pytest.raises(ValueError, match=f"cannot decode image file '{cut}' .*replace it with a "
                                         "readable copy and rerun to resume"):
        list(stream.train_batches(2, [0], 0))


@pytest.mark.parametrize("fields, message", [
    (dict(workers=-1), r"data.workers must be an integer >= 0, got -1"),
    (dict(workers=1.5), r"data.workers must be an integer >= 0, got 1.5"),
    (dict(prefetch=0), r"data.prefetch must be an integer >= 1, got 0"),
    (dict(path=None), r"source='imagefolder' needs data.path to a folder with train/ and val/"),
])
def test_stream_fields_are_checked(fields, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        data.parse({**folder_data(tmp_path), **fields})


def test_workers_default_to_the_usable_cores_up_to_16_and_belong_to_streams(monkeypatch):
    imagenet_data = {"source": "tfds", "name": "imagenet2012"}
    spec = data.parse(imagenet_data)
    assert spec.workers == min(len(os.sched_getaffinity(0)), 16) and spec.prefetch == 2
    monkeypatch.setattr(spec_lib, "usable_cores", lambda: 240)  # a TPU v4 host's vCPUs
    assert data.parse(imagenet_data).workers == 16
    assert data.parse({**imagenet_data, "workers": 240}).workers == 240  # set: as given
    with pytest.raises(ValueError, match=r"data.workers/data.prefetch \(4/None\) are only used "
                                         r"by streamed data sets"):
        data.parse({"source": "digits", "workers": 4})


def test_every_process_needs_an_equal_share_of_each_batch(monkeypatch):
    feeds.check_process_shares(256, 200, 50_000, 3)  # one process: anything goes
    # 4 processes of 2 devices each, in jax's order (by process).
    devices = [types.SimpleNamespace(process_index=p) for p in (0, 0, 1, 1, 2, 2, 3, 3)]
    monkeypatch.setattr(jax, "process_count", lambda: 4)
    monkeypatch.setattr(jax, "devices", lambda: devices)
    monkeypatch.setattr(jax, "device_count", lambda: 8)
    feeds.check_process_shares(256, 200, 50_000, 0)
    with pytest.raises(ValueError, match=r"config.train.batch_size=250 must be divisible by "
                                         r"the 4 processes"):
        feeds.check_process_shares(250, 200, 50_000, 0)
    with pytest.raises(ValueError, match=r"min\(config.train.eval_batch_size=200, 50 test "
                                         r"examples\) = 50, must be divisible by the 4"):
        feeds.check_process_shares(256, 200, 50, 0)
    with pytest.raises(ValueError, match=r"the same number of mesh devices on every process "
                                         r"\(each makes its share of every batch\), got "
                                         r"\[2, 2, 2, 0\] with config.mesh.devices=6; use "
                                         r"config.mesh.devices=0"):
        feeds.check_process_shares(256, 200, 50_000, 6)


# ---- batches: numpy/Pillow references, workers -------------------------------------------
def _files(root, split):
    """(path, label) in the order an ImageFolder lists them, found independently."""
    return [(path, label) for label, name in enumerate(CLASSES)
            for path in sorted(glob.glob(os.path.join(root, split, name, "*")))]


def _decoded(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_batches_are_the_examples_transformed_and_the_same_for_any_worker_count(folder):
    stream = data.open_stream(folder_data(folder))
    train = list(stream.train_batches(4, (0, 5), epoch=1, first_batch=1))
    test = list(stream.test_batches(4))
    assert (stream.num_train, stream.num_test, stream.classes) == (12, 6, CLASSES)
    files, val = _files(folder, "train"), _files(folder, "val")
    assert [b.images.shape for b in train] == [(2, 4, 16, 16, 3)] * 2  # steps 1 and 2
    for b, batch in enumerate(train, start=1):
        images = batch.images.astype(np.float32) + batch.lighting[:, :, None, None, :]
        for s, seed in enumerate((0, 5)):
            order = np.asarray(data.epoch_order(seed, 1, 12))
            for row, index in enumerate(order[b * 4:(b + 1) * 4]):
                path, label = files[index]
                want = imagenet_train_image(_decoded(path), 16,
                                            np.random.default_rng([seed, 1, index]))
                np.testing.assert_array_equal(images[s, row], want)
                assert batch.labels[s, row] == label
    assert [b.valid.tolist() for b in test] == [[True] * 4, [True, True, False, False]]
    for i, (path, label) in enumerate(val):
        np.testing.assert_array_equal(test[i // 4].images[i % 4],
                                      imagenet.eval_transform(_decoded(path), 16))
        assert test[i // 4].labels[i % 4] == label
    # Worker processes make the chunks (train and eval pipelines are built alike); the
    # batches stay bitwise the same.
    for workers in (1, 2):
        other = data.open_stream(folder_data(folder, workers=workers))
        got = list(other.train_batches(4, (0, 5), epoch=1, first_batch=1))
        assert len(got) == len(train)
        for a, b in zip(got, train):
            for field in ("images", "lighting", "labels"):
                np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def _reader(tmp_path, workers: int, then: str):
    """Starts a script that streams a 48-image folder with `workers` workers in its own
    process group (as a terminal runs it): it reads one batch, prints "reading" and its
    workers' PIDs, waits for a line on stdin, then runs `then`. Returns the process and
    the PIDs; SIGINTs it receives are counted in `signals`."""
    folder = write_image_folder(tmp_path / "images", classes=("a", "b"), per_class=(24, 1),
                                shape=(8, 8))
    script = tmp_path / "reader.py"
    script.write_text(textwrap.dedent(f"""
        import multiprocessing, signal, sys
        sys.path.insert(0, {REPO!r})
        from relgraph_jax import data
        if __name__ == "__main__":
            signals = []
            signal.signal(signal.SIGINT, lambda signum, frame: signals.append(signum))
            stream = data.open_stream(dict(source="imagefolder", path={str(folder)!r},
                                           image_size=8, workers={workers}, prefetch=1))
            batches = stream.train_batches(1, [0], epoch=0)
            next(batches)
            print("reading", *[p.pid for p in multiprocessing.active_children()], flush=True)
            sys.stdin.readline()
            {then}
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    before = []  # its output up to its first batch (warnings may come first)
    for line in proc.stdout:
        before.append(line)
        if line.startswith("reading"):
            return proc, [int(pid) for pid in line.split()[1:]]
    proc.wait()
    raise AssertionError("".join(before))


def test_ctrl_c_reaches_the_reader_but_not_its_workers(tmp_path):
    """A terminal's Ctrl-C is sent to the whole process group: the reading process gets it
    (the trainer's handler then stops at the next chunk with a checkpoint), while its grain
    worker must live on to make the rest of the epoch (had it died, the next batches it
    owes would fail). 48 one-image steps: far more than the worker keeps ready."""
    proc, _ = _reader(tmp_path, 1, 'print("signals", len(signals), "batches", '
                                   '1 + sum(1 for _ in batches), flush=True)')
    try:
        os.killpg(proc.pid, signal.SIGINT)
        output = proc.communicate("\n", timeout=300)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the reader and its worker
    assert proc.returncode == 0 and "signals 1 batches 48\n" in output, output[-3000:]


def test_workers_end_with_a_reader_that_is_killed_outright(tmp_path):
    """A SIGKILL (or a second SIGTERM) gives the reading process no chance to close its
    pipelines: its workers notice that it is gone and end within a second, instead of
    running on as orphans."""
    proc, workers = _reader(tmp_path, 2, "pass")
    try:
        assert len(workers) == 2
        proc.kill()
        proc.wait(timeout=30)
        deadline = time.monotonic() + 5
        while any(map(process_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in workers if process_alive(pid)]
    finally:
        for pid in [proc.pid] + workers:
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_only_the_processes_started_inside_are_stopped_at_the_end():
    """The trainer's last cleanup stops the workers it started, never a process its caller
    had before (a notebook's pool, a driver's own workers)."""
    spawn = multiprocessing.get_context("spawn")
    mine = spawn.Process(target=time.sleep, args=(60,), daemon=True)
    mine.start()
    try:
        with stream_lib.workers_stopped():
            straggler = spawn.Process(target=time.sleep, args=(60,), daemon=True)
            straggler.start()
        assert not straggler.is_alive() and straggler.exitcode == -signal.SIGTERM
        assert mine.is_alive()
    finally:
        mine.kill()
        mine.join()


def test_more_workers_than_cores_are_capped_with_one_line(tmp_path, capsys):
    folder = write_image_folder(tmp_path / "images", classes=("a", "b"), per_class=(1, 1),
                                shape=(8, 8))
    cores = len(os.sched_getaffinity(0))
    spec = data.validate(folder_data(folder, workers=1000))
    assert (spec.workers, spec.workers_capped_from) == (cores, 1000)
    assert capsys.readouterr().err == (f"data.workers=1000 is more than the {cores} usable cores "
                                       f"of this machine: using {cores} decoding processes\n")
    assert data.validate(folder_data(folder, workers=cores)).workers_capped_from is None


# ---- the trainer: one process, two processes, stop and resume ----------------------------
def _sweep_config(path, **fields):
    """An 8-node MLP on 16x16 images, 2 seeds (two orders and augmentations per step), 2
    epochs of 3 steps, precise BN from one batch, evaluation batches of 4 (the last half
    padding), on 4 devices."""
    config = common.experiment(
        "mlp", graphs="complete:n=8", seeds=2, input_shape=(16, 16, 3),
        data=ml_collections.ConfigDict(folder_data(path, **fields)),
        train_cfg=common.train(batch_size=4, epochs=2, lr=0.1, weight_decay=5e-4,
                               eval_batch_size=4, precise_bn_samples=4))
    config.model.update(dict(nodes=8, stem_width=16, width=16, num_classes=len(CLASSES)))
    config.train.update(dict(steps_per_call=2, width_buckets=1))
    config.mesh.devices = 4
    return config


def _records(workdir):
    return sorted(results.read_records(os.path.join(workdir, results.RESULTS_FILE)),
                  key=lambda r: (r["variant"], r["epoch"]))


class ReadLog:
    """Records (split folder, example index) of every example the stream decodes."""

    def __init__(self):
        self.reads = []
        self._read = stream_lib.read_example

    def __call__(self, source, index, name):
        self.reads.append((os.path.basename(source.folder), int(index)))
        return self._read(source, index, name)


@pytest.fixture(scope="module")
def reference(folder, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("reference"))
    log = ReadLog()
    with fast_trainer_compiles(), pytest.MonkeyPatch.context() as patch:
        patch.setattr(stream_lib, "read_example", log)
        summary = trainer.train_and_evaluate(_sweep_config(folder), workdir)
    assert summary["finished"] and summary["steps_run"] == 6
    with open(os.path.join(workdir, workdir_lib.DATA_FILE)) as f:  # the data's identity
        assert json.load(f)["classes"] == list(CLASSES)
    return _records(workdir), collections.Counter(log.reads)


def test_the_reference_run_records_every_epoch_and_decodes_what_it_needs(reference):
    recs, reads = reference
    assert [(r["variant"], r["epoch"]) for r in recs] == [(v, e) for v in range(2) for e in (1, 2)]
    assert all(r["status"] == "ok" and np.isfinite(r["train_loss"]) for r in recs)
    for r in recs:  # errors count whole images of the 6 validation images
        wrong = r["test_error"] / 100 * 6
        assert wrong == pytest.approx(round(wrong), abs=1e-9)
    # Per epoch: 3 steps x 2 seeds x 4 images and 1 precise-BN batch x 2 seeds x 4; each
    # validation image once (the padding rows of the last eval batch are never read).
    assert sum(n for (split, _), n in reads.items() if split == "train") == 2 * (24 + 8)
    assert {key: n for key, n in reads.items() if key[0] == "val"} == {("val", i): 2
                                                                       for i in range(6)}


def test_a_stream_of_other_images_than_input_shape_is_refused_before_building(folder, tmp_path,
                                                                                monkeypatch):
    """A stream's image size (data.image_size unset: 224) is not in the data summary; the
    trainer checks it with check_data's line once the stream is open, before any build."""
    config = _sweep_config(folder, image_size=None)
    config.input_shape = (16, 16, 3)
    monkeypatch.setattr(trainer, "build_sweep", lambda *a, **k: pytest.fail("built a sweep"))
    with pytest.raises(ValueError, match=r"images have shape \(224, 224, 3\) but "
                                         r"config\.input_shape is \(16, 16, 3\); set them equal"):
        trainer.train_and_evaluate(config, str(tmp_path))


def test_kill_and_resume_mid_epoch_writes_the_same_records(reference, folder, tmp_path):
    workdir = str(tmp_path)
    with fast_trainer_compiles():
        first = trainer.train_and_evaluate(_sweep_config(folder), workdir, stop_after_steps=2)
        assert not first["finished"] and first["step"] == 2  # inside the first epoch
        # The prefetch depth may change on resume (a run-control field, as data.workers).
        second = trainer.train_and_evaluate(_sweep_config(folder, prefetch=1), workdir)
        assert second["finished"] and second["steps_run"] == 4
    assert _records(workdir) == reference[0]


def test_two_processes_each_decode_their_share_and_write_the_same_records(reference, folder,
                                                                          tmp_path):
    """jax.distributed, 2 local processes x 2 CPU devices: each decodes half of every batch
    (train, precise BN, evaluation), together exactly the one-process run's examples, and
    process 0 writes the one-process run's records."""
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(f"""
        import json, os, sys
        os.environ["JAX_PLATFORMS"] = "cpu"
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
        sys.path[:0] = [{REPO!r}, {os.path.dirname(__file__)!r}]
        import jax
        jax.distributed.initialize("127.0.0.1:{free_port()}", 2, int(sys.argv[1]))
        import pytest
        from helpers import fast_trainer_compiles
        from test_imagenet_input import ReadLog, _sweep_config
        from relgraph_jax.data import stream
        from relgraph_jax.train import trainer
        config = _sweep_config({folder!r})
        config.mesh.devices = 0
        log = ReadLog()
        with fast_trainer_compiles(), pytest.MonkeyPatch.context() as patch:
            patch.setattr(stream, "read_example", log)
            trainer.train_and_evaluate(config, {str(tmp_path / "run")!r})
        with open(f"{tmp_path}/reads{{sys.argv[1]}}.json", "w") as f:
            json.dump(log.reads, f)
    """))
    outputs = run_two_processes(script, REPO)
    assert "on 4 devices" in outputs[0]
    reads = [collections.Counter(map(tuple, json.loads((tmp_path / f"reads{i}.json").read_text())))
             for i in range(2)]
    ref_records, ref_reads = reference
    # Each decodes half of every training batch (process 1 gets the last eval batch's
    # padding rows: fewer eval images); together exactly what one process decodes.
    train = [sum(n for (split, _), n in r.items() if split == "train") for r in reads]
    assert train == [2 * (24 + 8) // 2] * 2
    assert reads[0] + reads[1] == ref_reads
    assert _records(str(tmp_path / "run")) == ref_records
