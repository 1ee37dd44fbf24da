"""Reliability: bad input fails fast with a clear message, SIGTERM checkpoints and exits,
a kill during a checkpoint write leaves the previous checkpoint usable."""
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from relgraph_jax import results
from relgraph_jax.train import trainer

sys.path.insert(0, os.path.dirname(__file__))
from test_train import REPO, tiny_config  # noqa: E402


def _both(*changes):
    def apply(config, tmp_path):
        for change in changes:
            change(config, tmp_path)
    return apply


def _set(path, value):
    """A change to one config field (new keys allowed: the config is not locked)."""
    def apply(config, tmp_path):
        node = config
        *parents, leaf = path.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return apply


def _arrays(writer):
    """A data block pointing at an .npz that `writer(path)` creates."""
    def apply(config, tmp_path):
        path = str(tmp_path / "bad.npz")
        writer(path)
        config.data = dict(source="arrays", name="cifar10", path=path, augment=False)
    return apply


def _wrong_rank(path):
    np.savez(path, x_train=np.zeros((4, 32, 32), np.uint8), y_train=np.zeros(4, np.int64),
             x_test=np.zeros((2, 32, 32, 3), np.uint8), y_test=np.zeros(2, np.int64))


def _label_mismatch(path):
    np.savez(path, x_train=np.zeros((4, 32, 32, 3), np.uint8), y_train=np.zeros(3, np.int64),
             x_test=np.zeros((2, 32, 32, 3), np.uint8), y_test=np.zeros(2, np.int64))


def _corrupt(path):
    with open(path, "wb") as f:
        f.write(b"PK\x03\x04 this is not a zip archive")


# (what is wrong, how to make it, the message it must produce)
BAD_INPUTS = [
    ("unknown top-level key", _set("epochz", 3), r"unknown config key\(s\) epochz"),
    ("unknown train key", _set("train.learning_rate", 0.1), r"train\.learning_rate"),
    ("negative learning rate", _set("train.lr", -0.1), r"train\.lr=-0\.1: must be > 0"),
    ("momentum out of range", _set("train.momentum", 1.5), r"train\.momentum=1\.5"),
    ("negative variant batch", _set("train.variant_batch", -1), r"train\.variant_batch=-1: must be a positive integer, or 0"),
    ("unknown compute dtype", _set("train.compute_dtype", "float16"), r"train\.compute_dtype='float16': allowed \['float32', 'bfloat16'\]"),
    ("blocks over several graphs", _set("model.impl", "blocks"), r"model\.impl='blocks' compiles one graph's blocks into the program, but this sweep has 3 graphs"),
    ("zero width buckets", _set("train.width_buckets", 0), r"train\.width_buckets=0: must be a positive integer"),
    ("zero seeds", _set("seeds", 0), r"seeds=0: must be a positive integer"),
    ("k > n", _set("graphs", "ws:n=16,k=20,p=0.1,seed=0"), r"k \(average degree\) must lie in \[2, n\] = \[2, 16\], got 20"),
    ("p outside [0, 1]", _set("graphs", "ws:n=16,k=4,p=1.5,seed=0"), r"p \(rewiring probability\) must lie in \[0, 1\], got 1\.5"),
    ("unknown graph kind", _set("graphs", "lattice:n=16"), r"unknown kind 'lattice'; allowed kinds"),
    ("unknown paper set", _set("graphs", "paper:n16_999"), r"unknown paper graph set 'n16_999'"),
    ("index outside a set", _set("graphs", "paper:n16_48/48"), r"index 48 is outside paper set n16_48; allowed: 0\.\.47"),
    ("graph nodes != model nodes", _set("graphs", "paper:n64_52/0"), r"has 64 nodes but config\.model\.nodes is 16"),
    # A WS graph narrower than its nodes is rebuilt at fewer nodes (graph2nn's rule); a
    # graph without a recipe is refused.
    ("more nodes than channels", _both(_set("model.width", 8), _set("graphs", "edges:n=16,0-1,1-2")),
     r"layer graph0: 32 -> 8 channels, fewer than the graph's 16 nodes, and graph 'edges:n=16,0-1,1-2' has no recipe"),
    ("unknown model family", _set("model.name", "vgg16"), r"unknown model family 'vgg16'"),
    ("unknown data source", _set("data.source", "kaggle"), r"kaggle"),
    ("missing data file", _set("data", dict(source="arrays", name="cifar10", path="/nonexistent/c.npz", augment=False)),
     r"/nonexistent/c\.npz.*prepare_cifar10"),
    ("images without a channel axis", _arrays(_wrong_rank), r"x_train"),
    ("label count mismatch", _arrays(_label_mismatch), r"y_train"),
    ("corrupt npz", _arrays(_corrupt), r"bad\.npz"),
]


@pytest.mark.parametrize("what,make_bad,message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_fails_before_loading_or_compiling(what, make_bad, message, tmp_path, monkeypatch):
    def too_late(*args, **kwargs):
        raise AssertionError(f"{what}: data loading started before the error was raised")
    monkeypatch.setattr(trainer, "_open_data", too_late)
    config = tiny_config()
    make_bad(config, tmp_path)
    workdir = tmp_path / "run"
    with pytest.raises((ValueError, TypeError), match=message):
        trainer.train_and_evaluate(config, str(workdir))
    assert not (workdir / "config.json").exists()  # an invalid config never marks a workdir


def test_workdir_of_another_config_is_refused_before_loading(tmp_path, monkeypatch):
    workdir = str(tmp_path)
    trainer.train_and_evaluate(tiny_config(epochs=1), workdir)
    before = sorted(os.listdir(workdir))
    results_path = os.path.join(workdir, results.RESULTS_FILE)
    with open(results_path) as f:
        records = f.read()
    assert records  # the finished epoch left records that the refusal must not touch
    monkeypatch.setattr(trainer, "_open_data", lambda *a: pytest.fail("loaded data"))
    with pytest.raises(ValueError, match=r"different config \(train\.lr: 0\.1 there vs 0\.05 now\)"):
        trainer.train_and_evaluate(tiny_config(epochs=1, lr=0.05), workdir)
    assert sorted(os.listdir(workdir)) == before
    with open(results_path) as f:
        assert f.read() == records


def test_unwritable_workdir_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="is not writable"):
        trainer.train_and_evaluate(tiny_config(), str(blocker / "run"))


def test_interrupted_checkpoint_write_leaves_the_last_good_one(tmp_path):
    """A temporary (unfinished) checkpoint directory, as a kill mid-save leaves it, is ignored."""
    workdir = tmp_path / "run"
    first = trainer.train_and_evaluate(tiny_config(), str(workdir), stop_after_steps=3)
    ckpt = workdir / "checkpoints"
    assert sorted(os.listdir(ckpt)) == ["3"]
    torn = ckpt / "7.orbax-checkpoint-tmp-1234"
    shutil.copytree(ckpt / "3", torn)
    for f in torn.rglob("*"):
        if f.is_file() and f.stat().st_size > 100:
            f.write_bytes(f.read_bytes()[:50])  # truncated mid-write
    second = trainer.train_and_evaluate(tiny_config(), str(workdir), stop_after_steps=2)
    assert first["step"] == 3 and second["step"] == 5  # resumed from step 3, not from the torn 7


def test_sigterm_checkpoints_and_exits_with_its_own_status(tmp_path):
    """128 + SIGTERM = 143 after the checkpoint, so a scheduler can tell a stopped run from
    a finished one (exit 0); the workdir's lock is released."""
    workdir = tmp_path / "run"
    cmd = [sys.executable, "-m", "experiments.main",
           "--config=experiments/configs/quickstart.py", f"--workdir={workdir}",
           "--config.train.epochs=50", "--config.train.steps_per_call=2",
           "--config.graphs=paper:n64_52/0;complete:n=64"]
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:  # wait until training is under way
        lines.append(line)
        if line.startswith("epoch "):
            break
    proc.send_signal(signal.SIGTERM)
    sent = time.time()
    out, _ = proc.communicate(timeout=120)
    lines.append(out)
    log = "".join(lines)
    assert proc.returncode == 128 + signal.SIGTERM == 143, log[-2000:]
    assert "checkpoint saved; rerun the same command to resume" in log
    assert not (workdir / "run.lock").exists()
    assert time.time() - sent < 60
    steps = [int(d) for d in os.listdir(workdir / "checkpoints") if d.isdigit()]
    assert steps and max(steps) < 50 * 22


# ----------------------------------------------------------------------------- issue 14 B
# What "the same workdir" means, and faults the run recovers from (or refuses with one
# line): a lock per run, checked record writes, damaged checkpoints, lost records, changed
# data. Trainer-level tests start from one finished tiny workdir (2 epochs, checkpoints at
# steps 11 and 22) and rerun copies of it.
import errno  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402

import jax  # noqa: E402

from helpers import fast_programs, free_port  # noqa: E402
from relgraph_jax.data import digits as digits_lib  # noqa: E402
from relgraph_jax.data.fingerprint import fingerprint  # noqa: E402
from relgraph_jax.data.spec import parse as parse_data  # noqa: E402
from relgraph_jax.train import checkpoint as checkpoint_lib  # noqa: E402
from relgraph_jax.train import programs as programs_lib  # noqa: E402
from relgraph_jax.train import workdir as workdir_lib  # noqa: E402


def _small_config():
    """The complete 16-node graph x 2 seeds on one device: 11 steps per epoch, 2 epochs."""
    config = tiny_config()
    config.graphs = "complete:n=16"
    config.mesh.devices = 1
    return config


_BUILD, _BUILT = programs_lib.build, {}


def _built_once(cfg, batches, mesh, variant_batch):
    """programs.build for the runs of this module, which all have one config: each bucket's
    programs are built and compiled (helpers.FAST) once and shared, so a rerun costs its
    steps, not a compile."""
    key = (repr(cfg.model), cfg.steps_per_epoch, repr(batches), mesh.devices.shape,
           variant_batch)
    if key not in _BUILT:
        _BUILT[key] = fast_programs(_BUILD(cfg, batches, mesh, variant_batch))
    return _BUILT[key]


def _run(workdir, **kwargs):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(programs_lib, "build", _built_once)
        return trainer.train_and_evaluate(_small_config(), str(workdir), **kwargs)


def _lines(workdir):
    return (workdir / results.RESULTS_FILE).read_bytes().splitlines(keepends=True)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished workdir and its records file's bytes."""
    workdir = tmp_path_factory.mktemp("finished") / "run"
    assert _run(workdir)["finished"]
    assert sorted(os.listdir(workdir / "checkpoints")) == ["11", "22"]
    return workdir, (workdir / results.RESULTS_FILE).read_bytes()


@pytest.fixture
def copy(finished, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(finished[0], workdir)
    return workdir


def _refused_before_loading(workdir, match):
    """Runs the small sweep in `workdir` and expects a WorkdirError matching `match`, raised
    before any data is loaded and with the workdir's files left as they were."""
    listing = sorted(os.listdir(workdir))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trainer, "_open_data", lambda *a: pytest.fail("loaded data"))
        with pytest.raises(workdir_lib.WorkdirError, match=match):
            trainer.train_and_evaluate(_small_config(), str(workdir))
    assert sorted(os.listdir(workdir)) == listing


def test_a_finished_workdir_holds_its_data_fingerprint_and_no_lock(finished):
    workdir, records = finished
    spec = parse_data(_small_config().data)
    assert json.loads((workdir / workdir_lib.DATA_FILE).read_text()) == fingerprint(spec)
    assert not (workdir / workdir_lib.LOCK_FILE).exists()  # released at a normal exit
    assert len(records.splitlines()) == 4  # 2 variants x 2 epochs


_HOLDER = """
import sys, time
from relgraph_jax.train import workdir
lock = workdir.Lock(sys.argv[1])
print("locked", flush=True)
time.sleep(600)
"""


def test_a_second_run_is_refused_while_the_first_is_alive_and_a_dead_ones_lock_is_taken_over(
        tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(workdir)], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(workdir_lib.WorkdirError,
                           match=rf"is in use by another run \(PID {holder.pid} on .*kill "
                                 rf"{holder.pid}"):
            trainer.train_and_evaluate(_small_config(), str(workdir))
        assert sorted(os.listdir(workdir)) == [workdir_lib.LOCK_FILE]  # nothing written
    finally:
        holder.kill()  # SIGKILL: its lock file stays behind, naming a dead process
        holder.wait()
    with workdir_lib.Lock(str(workdir)) as lock:
        assert lock.notice.startswith(f"took over {workdir / workdir_lib.LOCK_FILE} from PID "
                                      f"{holder.pid}")
        assert json.loads((workdir / workdir_lib.LOCK_FILE).read_text())["pid"] == os.getpid()
    assert not (workdir / workdir_lib.LOCK_FILE).exists()


def test_a_lock_from_another_host_is_refused_with_how_to_remove_it(tmp_path):
    path = tmp_path / workdir_lib.LOCK_FILE
    path.write_text(json.dumps({"pid": 123, "host": "elsewhere", "started": "then"}))
    with pytest.raises(workdir_lib.WorkdirError, match=rf"PID 123 on host 'elsewhere' .* "
                                                         rf"delete {re.escape(str(path))} and rerun"):
        workdir_lib.Lock(str(tmp_path))
    assert json.loads(path.read_text())["host"] == "elsewhere"  # left as it was


def _rec(variant, epoch):
    return {"variant": variant, "epoch": epoch, "test_error": 10.0 + variant}


def test_short_writes_are_completed_and_a_failed_one_leaves_the_file_as_it_was(
        tmp_path, monkeypatch):
    store = results.ResultsStore(str(tmp_path))
    store.append([_rec(0, 1)])
    before = open(store.path, "rb").read()
    real_write = os.write
    monkeypatch.setattr(results.os, "write", lambda fd, data: real_write(fd, bytes(data[:7])))
    assert store.append([_rec(1, 1), _rec(2, 1)]) == 2  # written 7 bytes at a time
    whole = before + results.encode([_rec(1, 1), _rec(2, 1)])
    assert open(store.path, "rb").read() == whole

    def disk_fills(fd, data):
        if len(data) > 40:
            return real_write(fd, bytes(data[:40]))  # what fits, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(results.os, "write", disk_fills)
    with pytest.raises(results.WriteError, match=rf"could not append 2 line\(s\) to "
                                                 rf"{re.escape(store.path)} \(No space left on device\)"):
        store.append([_rec(3, 1), _rec(4, 1)])
    assert open(store.path, "rb").read() == whole  # no torn line for the next append to join
    assert (3, 1) not in store.keys


def test_deleted_records_are_computed_again_and_a_full_disk_stops_before_the_checkpoint(
        finished, copy, monkeypatch, capsys):
    path = copy / results.RESULTS_FILE
    path.unlink()  # every record lost: epoch 1's is before the newest checkpoint (22)
    real_write = os.write

    def full_after_epoch_1(fd, data):
        if path.exists() and path.stat().st_size > 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)
    monkeypatch.setattr(results.os, "write", full_after_epoch_1)
    with pytest.raises(results.WriteError, match="No space left on device"):
        _run(copy)
    superseded = copy / "checkpoints" / "22.superseded"
    out = capsys.readouterr().out
    assert "which the checkpoint at step 22 is past: resumed from step 11 evaluating epoch 1 " \
           "again" in out
    assert f"not written twice; moved the newer checkpoint(s) to {superseded})" in out
    epoch_1 = b"".join(finished[1].splitlines(keepends=True)[:2])
    assert path.read_bytes() == epoch_1  # epoch 2's records were refused whole
    # No checkpoint after them; the one they were past is set aside, not deleted.
    assert sorted(os.listdir(copy / "checkpoints")) == ["11", "22.superseded"]
    assert not (copy / workdir_lib.LOCK_FILE).exists()  # released on the error too
    monkeypatch.setattr(results.os, "write", real_write)  # space freed: rerun
    assert _run(copy)["finished"]
    assert path.read_bytes() == finished[1]
    assert sorted(os.listdir(copy / "checkpoints")) == ["11", "22", "22.superseded"]


def test_a_corrupt_results_line_is_named_with_file_and_line(copy, caplog):
    lines = _lines(copy)
    lines[1] = lines[1][:30] + b"\n"
    (copy / results.RESULTS_FILE).write_bytes(b"".join(lines))
    path = copy / results.RESULTS_FILE
    with pytest.raises(results.CorruptLineError, match=rf"^{re.escape(str(path))}:2: corrupt line"):
        trainer.train_and_evaluate(_small_config(), str(copy))
    assert (copy / results.RESULTS_FILE).read_bytes() == b"".join(lines)
    assert not (copy / workdir_lib.LOCK_FILE).exists()
    with caplog.at_level(logging.WARNING):  # readers skip it loudly, naming file:line
        assert len(results.read_records(str(path))) == 3
    assert f"{path}:2: corrupt line(s), not records, skipped: line 2" in caplog.text


def _truncate_biggest(step_dir):
    files = [p for p in step_dir.rglob("*") if p.is_file()]
    biggest = max(files, key=lambda p: p.stat().st_size)
    biggest.write_bytes(biggest.read_bytes()[:100])


DAMAGE = {
    "truncated data": _truncate_biggest,
    "garbage metadata": lambda d: (d / "variants" / "_METADATA").write_bytes(b"\xff\x00" * 64),
    "missing item": lambda d: shutil.rmtree(d / "variants"),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_a_damaged_checkpoint_is_unreadable_not_a_traceback(copy, damage):
    DAMAGE[damage](copy / "checkpoints" / "22")
    ckpts = checkpoint_lib.Checkpoints(str(copy))
    try:
        assert ckpts.steps() == [22, 11]
        with pytest.raises(checkpoint_lib.Unreadable):
            ckpts.read(22)
        assert set(ckpts.read(11)) == {"group0"}
    finally:
        ckpts.close()


def test_a_damaged_newest_checkpoint_falls_back_to_the_older_one(finished, copy, capsys):
    """In a finished workdir whose last record was torn off as well: training again from
    step 11 writes that record and none of the others twice."""
    _truncate_biggest(copy / "checkpoints" / "22")
    (copy / results.RESULTS_FILE).write_bytes(finished[1][:-30])
    assert _run(copy)["finished"]
    out = capsys.readouterr().out
    assert "checkpoint at step 22 is unreadable (" in out
    assert f"moved to {copy / 'checkpoints' / '22.unreadable'}, resumed from step 11" in out
    assert (copy / results.RESULTS_FILE).read_bytes() == finished[1]
    assert sorted(os.listdir(copy / "checkpoints")) == ["11", "22", "22.unreadable"]


def test_no_readable_checkpoint_says_what_to_do(copy):
    for step in ("11", "22"):
        DAMAGE["garbage metadata"](copy / "checkpoints" / step)
    with pytest.raises(workdir_lib.WorkdirError,
                       match=r"no checkpoint in .*checkpoints is readable \(step 22: .*; "
                             r"step 11: .*\): delete that folder and rerun"):
        trainer.train_and_evaluate(_small_config(), str(copy))


def test_a_torn_tail_in_a_finished_workdir_is_evaluated_again(finished, copy, capsys):
    path = copy / results.RESULTS_FILE
    path.write_bytes(finished[1][:-30])
    assert _run(copy)["steps_run"] == 0
    assert "lacks 1 record(s) of epoch 2 (variant 1): evaluating epoch 2 again at step 22" \
        in capsys.readouterr().out
    assert path.read_bytes() == finished[1]


def test_lost_records_no_kept_checkpoint_can_recompute_are_refused(copy):
    shutil.rmtree(copy / "checkpoints" / "11")
    (copy / results.RESULTS_FILE).write_bytes(b"".join(_lines(copy)[2:]))  # epoch 1 lost
    with pytest.raises(workdir_lib.WorkdirError,
                       match=r"lacks 2 record\(s\) of epoch 1 \(variant 0, 1\), and no kept "
                             r"checkpoint is from before them \(steps 22\).*delete .*checkpoints"):
        trainer.train_and_evaluate(_small_config(), str(copy))


def test_a_workdir_without_its_config_json_is_refused(copy):
    (copy / workdir_lib.CONFIG_FILE).unlink()
    _refused_before_loading(copy, r"holds checkpoints/ and results.jsonl but no config.json")


def test_a_workdir_without_its_data_json_is_refused_unless_its_data_is_adopted(
        copy, capsys):
    """data.json deleted (or never written: a workdir from before data fingerprints) is
    refused, leaving the workdir as it is; --adopt_data records the current data's."""
    (copy / workdir_lib.DATA_FILE).unlink()
    _refused_before_loading(copy, r"holds checkpoints/ and results.jsonl but no data.json, so "
                                  r"which data made them is unknown.*rerun with --adopt_data")
    assert _run(copy, adopt_data=True)["finished"]
    assert "had no data.json: recorded the current data's, as --adopt_data asked" \
        in capsys.readouterr().out
    assert json.loads((copy / workdir_lib.DATA_FILE).read_text()) == fingerprint(
        parse_data(_small_config().data))


def test_the_claim_checks_the_config_again_under_the_lock(tmp_path):
    """Two runs of different configs both pass the early check of a new workdir; the one
    that takes the lock second must not resume the first one's workdir."""
    first, second = {"train": {"lr": 0.1}}, {"train": {"lr": 0.05}}
    assert workdir_lib.check_compatible(str(tmp_path), first) is False
    assert workdir_lib.check_compatible(str(tmp_path), second) is False
    workdir_lib.claim(str(tmp_path), first)
    with pytest.raises(workdir_lib.WorkdirError, match=r"train\.lr: 0\.1 there vs 0\.05 now"):
        workdir_lib.claim(str(tmp_path), second)
    assert json.loads((tmp_path / workdir_lib.CONFIG_FILE).read_text()) == first


def test_a_workdir_from_before_unset_config_fields_resumes(tmp_path):
    """An ImageNet config.json written before data.path, data.tfds_data_dir (unset: None),
    data.workers, data.prefetch, data.validation_size and the search block existed is the
    same config as today's; setting one of the new fields is not."""
    from experiments.configs import resnet34_imagenet
    config = resnet34_imagenet.get_config().to_dict()
    old = json.loads(json.dumps(config))
    for field in ("path", "tfds_data_dir", "workers", "prefetch", "validation_size"):
        del old["data"][field]
    del old["search"]
    (tmp_path / workdir_lib.CONFIG_FILE).write_text(json.dumps(old))
    assert workdir_lib.check_compatible(str(tmp_path), config) is True
    config["data"]["path"] = "/data/imagenet"
    with pytest.raises(workdir_lib.WorkdirError,
                       match=r"data\.path: its default there vs '/data/imagenet' now"):
        workdir_lib.check_compatible(str(tmp_path), config)


def test_changed_data_is_refused_before_anything_is_loaded(copy, tmp_path):
    data = digits_lib.load(parse_data({"source": "digits"}))
    npz = tmp_path / "d.npz"
    arrays = dict(x_train=data.x_train, y_train=data.y_train, x_test=data.x_test,
                  y_test=data.y_test)
    np.savez(npz, **arrays)
    spec = parse_data({"source": "arrays", "path": str(npz)})
    before = fingerprint(spec)
    arrays["y_train"] = arrays["y_train"].copy()
    arrays["y_train"][0] = (arrays["y_train"][0] + 1) % 10
    np.savez(npz, **arrays)
    after = fingerprint(spec)
    assert after["bytes"] == before["bytes"] and after["blake2b"] != before["blake2b"]

    recorded = json.loads((copy / workdir_lib.DATA_FILE).read_text())
    (copy / workdir_lib.DATA_FILE).write_text(json.dumps(dict(recorded, blake2b="0" * 32)))
    _refused_before_loading(copy, rf"the data changed since workdir .* was made \(blake2b: "
                                  rf"'0+' there vs '{recorded['blake2b']}' now\)")


def test_a_workdir_that_trained_no_step_takes_the_mended_data(tmp_path):
    """A run refused mid-way before its first step (a bad image found when decoded) leaves
    config.json and data.json; with the data mended, the rerun records the new data's
    fingerprint instead of refusing. Once it holds records (or checkpoints), other data
    is refused."""
    workdir, config = tmp_path / "w", {"seeds": 1}
    old, new = {"source": "imagefolder", "n": 7}, {"source": "imagefolder", "n": 6}
    workdir.mkdir()
    assert workdir_lib.claim(str(workdir), config, old) is None
    notice = workdir_lib.claim(str(workdir), config, new)
    assert notice == (f"workdir {str(workdir)!r} had trained no step yet: the data changed "
                      "since it was made, and its data.json now records the current data's")
    assert json.loads((workdir / workdir_lib.DATA_FILE).read_text()) == new
    (workdir / results.RESULTS_FILE).write_text('{"variant": 0, "epoch": 1}\n')
    with pytest.raises(workdir_lib.WorkdirError, match="the data changed since workdir"):
        workdir_lib.claim(str(workdir), config, old)
    assert json.loads((workdir / workdir_lib.DATA_FILE).read_text()) == new


def test_the_data_fingerprint_of_every_source(tmp_path):
    """Cheap identities: the bundled digits' file hash; a tfds version and split sizes
    (under mock data); an image folder's listing, which an added image changes."""
    from relgraph_jax.data import imagefolder
    from relgraph_jax.data.testing import mock_tfds, write_image_folder
    digits = fingerprint(parse_data({"source": "digits"}))
    assert digits == fingerprint(parse_data({"source": "digits"}))
    assert set(digits) == {"source", "name", "blake2b"} and len(digits["blake2b"]) == 32
    with mock_tfds(num_examples=6):
        assert fingerprint(parse_data({"source": "tfds", "name": "mnist"})) == {
            "source": "tfds", "name": "mnist", "version": "3.0.1", "train": 6, "test": 6}
    folder = parse_data({"source": "imagefolder", "path": write_image_folder(tmp_path / "f"),
                         "image_size": 16})
    before = fingerprint(folder)
    assert (before["train"]["images"], before["val"]["images"]) == (12, 6)
    shutil.copy(tmp_path / "f" / "val" / "cat" / "cat_00000.jpg",
                tmp_path / "f" / "val" / "cat" / "cat_00009.jpg")
    assert fingerprint(folder) == before  # one listing per process (cached) ...
    imagefolder.listing.cache_clear()  # ... so the next process sees the added image
    after = fingerprint(folder)
    assert after["train"] == before["train"] and after["val"]["images"] == 7
    assert after["val"]["blake2b"] != before["val"]["blake2b"]


def test_ctrl_c_checkpoints_and_reports_the_signal(copy, monkeypatch):
    shutil.rmtree(copy / "checkpoints" / "22")
    original = trainer.train_steps

    def interrupted(*args):
        original(*args)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C during the first chunk
    monkeypatch.setattr(trainer, "train_steps", interrupted)
    # Ctrl-C handled as in a terminal: a job started in the background (`cmd &`) begins
    # with SIGINT ignored, and the trainer leaves an ignored signal ignored.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        summary = _run(copy)
        after = signal.getsignal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert summary["stopped_by_signal"] == signal.SIGINT and not summary["finished"]
    assert summary["step"] == 15  # the chunk of 4 steps from 11 ran to its end
    assert sorted(os.listdir(copy / "checkpoints")) == ["11", "15"]
    assert after is signal.default_int_handler  # the trainer put back the one it found


def test_a_signal_during_a_chunk_stops_after_that_chunk_not_the_next(copy, monkeypatch):
    """The SIGTERM comes while the host waits for the first chunk (11-15) to finish on the
    device: the run stops after that chunk. (Before, the flag was read as soon as the chunk
    was dispatched, so the next chunk was already queued: two chunks of latency.)"""
    shutil.rmtree(copy / "checkpoints" / "22")
    wait, chunks = jax.block_until_ready, []
    original = trainer.train_steps

    def counted(*args):
        chunks.append(args[1])
        original(*args)

    def preempted_while_waiting(tree):
        if chunks == [11]:
            chunks.append("signal")
            os.kill(os.getpid(), signal.SIGTERM)
        return wait(tree)
    monkeypatch.setattr(trainer, "train_steps", counted)
    monkeypatch.setattr(jax, "block_until_ready", preempted_while_waiting)
    summary = _run(copy)
    assert summary["stopped_by_signal"] == signal.SIGTERM
    assert (summary["step"], chunks) == (15, [11, "signal"])
    assert sorted(os.listdir(copy / "checkpoints")) == ["11", "15"]


def test_a_signal_before_training_saves_nothing_new_and_names_itself(copy, monkeypatch, capsys):
    shutil.rmtree(copy / "checkpoints" / "22")
    build_sweep = trainer.build_sweep

    def preempted(*args, **kwargs):
        run = build_sweep(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # while the run starts, before its first chunk
        return run
    monkeypatch.setattr(trainer, "build_sweep", preempted)
    summary = _run(copy)
    assert summary["stopped_by_signal"] == signal.SIGTERM and not summary["finished"]
    assert (summary["step"], summary["steps_run"]) == (11, 0)
    assert sorted(os.listdir(copy / "checkpoints")) == ["11"]
    assert ("stopped before training from step 11 by SIGTERM: nothing new to save"
            in capsys.readouterr().out)


_PROCESS = """
import os, sys
os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=1"
import jax
jax.distributed.initialize(sys.argv[1], 2, int(sys.argv[2]))
from relgraph_jax.train import trainer, workdir

def refuse():
    raise workdir.WorkdirError("workdir is in use by another run")
try:
    trainer._on_process_0(refuse)
except workdir.WorkdirError as e:
    print(f"refused: {e}", flush=True)
"""


def test_a_refusal_on_process_0_stops_every_process():
    """Multi-host: only process 0 takes the workdir; the others must not go on to wait for
    it at their first collective."""
    address = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    procs = [subprocess.Popen([sys.executable, "-c", _PROCESS, address, str(i)], cwd=REPO,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True) for i in range(2)]
    said = [[line for line in p.communicate(timeout=300)[0].splitlines()
             if line.startswith("refused")] for p in procs]  # Gloo prints its own lines
    assert said == [["refused: workdir is in use by another run"],
                    ["refused: process 0 could not take the workdir; its message says why"]]
