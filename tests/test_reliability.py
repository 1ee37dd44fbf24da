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


def test_sigterm_checkpoints_and_exits_cleanly(tmp_path):
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
    assert proc.returncode == 0, log[-2000:]
    assert "checkpoint saved; rerun the same command to resume" in log
    assert time.time() - sent < 60
    steps = [int(d) for d in os.listdir(workdir / "checkpoints") if d.isdigit()]
    assert steps and max(steps) < 50 * 22
