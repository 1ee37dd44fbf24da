"""The trainer's live search (relgraph_jax.search.live) and the validation split it ranks on.

One sweep (3 graphs x 2 seeds, a 16-node MLP on digits, 3 epochs, each graph in its own
width bucket) runs twice: plain, and as a successive-halving search (eta=2, rungs after
epochs 1 and 2). The plain run is the reference: the search's decisions must be what
numpy computes from its validation errors, its survivors' records must equal it bitwise,
and a search stopped or crashed anywhere must, once resumed, write the same bytes.
"""
import contextlib
import io
import json
import os

import numpy as np
import pytest

from experiments.configs import quickstart
from helpers import shared_trainer_compiles
from relgraph_jax import data, results
from relgraph_jax.analysis import loading
from relgraph_jax.data import validation
from relgraph_jax.search import live
from relgraph_jax.train import trainer, validate, variants, workdir as workdir_lib

GRAPHS = "paper:n16_48/0;paper:n16_48/42;complete:n=16"  # widths 51, 52, 32
VALIDATION = 200
STEPS_PER_EPOCH = (1437 - VALIDATION) // 128  # the digits' 1437 training images less the held out
NUM_VARIANTS, EPOCHS = 6, 3


def search_config(policy="halving"):
    config = quickstart.get_config()
    config.model.nodes, config.model.stem_width, config.model.width = 16, 32, 32
    config.graphs, config.seeds = GRAPHS, 2
    config.data.validation_size = VALIDATION
    config.train.update(batch_size=128, epochs=EPOCHS, steps_per_call=4, variant_batch=1,
                        width_buckets=3)  # one bucket per graph: pruning a graph empties one
    config.mesh.devices = 2
    config.search.update(policy=policy, eta=2, first_rung=1)
    return config


def _train(config, workdir, **kwargs):
    """train_and_evaluate with its log captured: (summary, log text)."""
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        summary = trainer.train_and_evaluate(config, str(workdir), **kwargs)
    return summary, log.getvalue()


def _read(workdir, name):
    with open(os.path.join(workdir, name), "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def compiles():
    with shared_trainer_compiles():
        yield


@pytest.fixture(scope="module")
def plain(compiles, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("plain")
    summary, _ = _train(search_config("none"), workdir)
    assert summary["finished"] and summary["model_epochs"] == NUM_VARIANTS * EPOCHS
    return results.read_records(os.path.join(workdir, results.RESULTS_FILE))


@pytest.fixture(scope="module")
def searched(compiles, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("searched")
    summary, log = _train(search_config(), workdir)
    assert summary["finished"]
    return {"workdir": str(workdir), "summary": summary, "log": log,
            "results": _read(workdir, results.RESULTS_FILE),
            "search": _read(workdir, live.SEARCH_FILE),
            "records": results.read_records(os.path.join(workdir, results.RESULTS_FILE))}


# ----------------------------------------------------------------------------- the split
def _splitmix64(x: int) -> int:
    """The splitmix64 finaliser in Python integers: the reference for the numpy one."""
    mask = (1 << 64) - 1
    z = (x + 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def test_the_validation_split_is_fixed_disjoint_and_nested():
    n = 50
    keys = {i: _splitmix64(i) for i in range(n)}
    want = sorted(sorted(range(n), key=keys.get)[-7:])  # the 7 largest keys
    train, held = validation.split_indices(n, 7)
    assert held.tolist() == want
    assert sorted(train.tolist() + held.tolist()) == list(range(n))
    assert set(validation.split_indices(n, 5)[1]) < set(held)  # a larger split holds a smaller
    with pytest.raises(ValueError, match="validation_size=50 must be smaller than the 50"):
        validation.split_indices(n, 50)
    # On the digits: the held-out images leave the training set, the test set is untouched.
    whole = data.load({"source": "digits"})
    split = data.load({"source": "digits", "validation_size": VALIDATION})
    train, held = validation.split_indices(whole.num_train, VALIDATION)
    assert (split.num_train, split.num_val) == (whole.num_train - VALIDATION, VALIDATION)
    np.testing.assert_array_equal(split.x_train, whole.x_train[train])
    np.testing.assert_array_equal(split.y_val, whole.y_train[held])
    np.testing.assert_array_equal(split.x_test, whole.x_test)


def test_records_carry_the_validation_metrics(plain):
    assert len(plain) == NUM_VARIANTS * EPOCHS
    for r in plain:
        assert r["status"] == "ok" and 0 <= r["val_error"] <= 100 and r["val_loss"] > 0
        wrong = r["val_error"] * VALIDATION / 100  # a whole number of the 200 held-out digits
        assert abs(wrong - round(wrong)) < 1e-9
        # Trained on the 1237 digits left: 9 steps of 128 per epoch.
        assert r["step"] == r["epoch"] * STEPS_PER_EPOCH
    assert any(r["val_error"] != r["test_error"] for r in plain)


# ----------------------------------------------------------------------------- the search
def _expected_decisions(plain):
    """Successive halving by hand on the plain run's records: at epochs 1 and 2, keep the
    best ceil(n / 2) graphs by mean validation error over the two seeds."""
    alive, decisions = list(dict.fromkeys(r["graph"] for r in plain)), []
    for epoch in (1, 2):
        score = {g: np.mean([r["val_error"] for r in plain
                             if r["graph"] == g and r["epoch"] == epoch]) for g in alive}
        ranking = sorted(alive, key=lambda g: score[g])  # stable: ties keep graph order
        keep = -(-len(alive) // 2)
        decisions.append((epoch, [[g, score[g]] for g in ranking], ranking[:keep], ranking[keep:]))
        alive = [g for g in alive if g in ranking[:keep]]  # graph order, as the trainer gives
    return decisions


def test_decisions_follow_the_validation_errors(plain, searched):
    lines = [json.loads(line) for line in searched["search"].splitlines()]
    alive = [NUM_VARIANTS, 4, 2]
    for line, (epoch, ranking, kept, pruned), before, after in zip(
            lines, _expected_decisions(plain), alive, alive[1:]):
        assert (line["epoch"], line["metric"], line["kept"], line["pruned"]) == (
            epoch, "val_error", kept, pruned)
        assert line["ranking"] == ranking
        # Compute: every alive variant trained every epoch so far, against 6 x 3.
        assert line["variants_alive"] == after and line["full_model_epochs"] == 18
        assert line["model_epochs"] == {1: 6, 2: 6 + 4}[epoch]
    assert len(lines) == 2
    assert searched["summary"]["model_epochs"] == 6 + 4 + 2
    assert searched["summary"]["variants_alive"] == 2  # 1 graph x 2 seeds survive


def test_pruned_variants_stop_and_survivors_train_as_in_the_plain_run(plain, searched):
    want = {(r["variant"], r["epoch"]): r for r in plain}
    got = {}
    for r in searched["records"]:
        got.setdefault(r["variant"], []).append(r)
    pruned_at = {g: epoch for epoch, _, _, pruned in _expected_decisions(plain) for g in pruned}
    for variant, recs in got.items():
        last = pruned_at.get(recs[0]["graph"], EPOCHS)
        assert [r["epoch"] for r in recs] == list(range(1, last + 1))
        # The pruned variant's last record holds its evaluation at the rung, marked pruned;
        # everything else (the survivors' whole run) is bitwise the plain run's.
        for r in recs:
            status = "pruned" if last < EPOCHS and r["epoch"] == last else "ok"
            assert r == {**want[(variant, r["epoch"])], "status": status}
    assert len(got) == NUM_VARIANTS


def test_survivors_are_packed_into_fewer_buckets(searched):
    log = searched["log"]
    # Each rung empties a whole bucket: 3 buckets, then 2, then 1.
    for packing in ("6 variants in 3 bucket(s)", "4 variants in 2 bucket(s)",
                    "2 variants in 1 bucket(s)"):
        assert packing in log
    assert "search rung at epoch 1: 4 variants keep training, 2 pruned" in log
    assert "| 4 of 6 variants | 10.0/18 model-epochs (55.6 %) |" in log  # progress at epoch 2
    assert "done: search kept 2 of 6 variants | 12.0/18 model-epochs (66.7 %)" in log


def test_analysis_leaves_pruned_variants_out_of_the_end_but_not_of_their_rung(plain, searched):
    end = loading.load(searched["workdir"])
    assert len(end) == 2 and set(end.reached) == {EPOCHS}
    assert any("4 variant(s) were stopped by the live search" in n for n in end.notes)
    assert not any("have not reached" in n for n in end.notes)
    assert len(loading.load(searched["workdir"], epoch=1)) == NUM_VARIANTS


def test_a_search_stopped_or_killed_anywhere_resumes_to_the_same_bytes(searched, tmp_path,
                                                                        monkeypatch):
    """Stops (checkpoint, exit) and crashes (an exception as a kill would leave the files)
    at the moments that matter, each run resuming the previous one's workdir:
    1. stops mid-epoch 1 (step 5);
    2. crashes at the rung after epoch 1, once its decision is in search.jsonl but before
       its records are written (so before its checkpoint);
    3. resumes from step 5, takes the recorded decision, goes past the rung (checkpoint
       of the survivors at step 9) and crashes at the rung after epoch 2 between its
       records and its checkpoint;
    4. resumes right after the first rung (step 9) and finishes."""
    config = search_config()

    def crash_when(method, condition):
        def crashing(*args):
            if condition(*args):
                raise KeyboardInterrupt("simulated kill")
            return method(*args)
        return crashing

    assert _train(config, tmp_path, stop_after_steps=5)[0]["step"] == 5
    with monkeypatch.context() as patch:
        patch.setattr(results.ResultsStore, "append", crash_when(
            results.ResultsStore.append, lambda store, recs: recs[0]["epoch"] == 1))
        with pytest.raises(KeyboardInterrupt):
            _train(config, tmp_path)
    assert len(live.read_decisions(str(tmp_path))) == 1
    with monkeypatch.context() as patch:
        patch.setattr(trainer, "_save", crash_when(
            trainer._save, lambda run, ckpts, step: step == 2 * STEPS_PER_EPOCH))
        with pytest.raises(KeyboardInterrupt):
            _train(config, tmp_path)
    summary, log = _train(config, tmp_path)
    assert f"resumed from checkpoint at step {STEPS_PER_EPOCH} " in log
    assert summary["finished"] and summary["steps_run"] == 2 * STEPS_PER_EPOCH
    assert _read(tmp_path, results.RESULTS_FILE) == searched["results"]
    assert _read(tmp_path, live.SEARCH_FILE) == searched["search"]


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("change,message", [
    (dict(policy="grid"), "search.policy='grid': allowed ['none', 'halving']"),
    (dict(metric="train_loss"), "search.metric='train_loss': allowed ['val_error', 'test_error']"),
    (dict(eta=1), "search.eta=1: must be an integer >= 2"),
    (dict(first_rung=3), "search.first_rung=3: the search decides nothing before the last epoch"),
    (dict(keep_complete=None), "search.keep_complete=None: must be True or False"),
    (dict(keep_at_least=0), "search.keep_at_least=0: must be an integer >= 1"),
    (dict(validation_size=0), "search.metric='val_error' ranks the graphs on a validation split, "
                              "but data.validation_size=0"),
])
def test_bad_search_settings_get_one_line(change, message):
    config = search_config()
    if "validation_size" in change:
        config.data.validation_size = change.pop("validation_size")
    config.search.update(change)
    with pytest.raises(ValueError) as error:
        validate.validate_config(config)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_keep_complete_needs_a_complete_graph_and_streams_have_no_split_yet():
    config = search_config()
    config.graphs = "paper:n16_48/0;paper:n16_48/42"
    config.search.keep_complete = True
    with pytest.raises(ValueError, match="search.keep_complete=True .* add complete:n=16"):
        variants.build_variants(config)
    with pytest.raises(ValueError, match="validation_size=100: a validation split of the "
                                         "streamed imagenet2012 is not supported yet"):
        data.parse({"source": "tfds", "name": "imagenet2012", "validation_size": 100})


def test_a_split_as_large_as_the_training_set_is_refused_before_anything_is_written(tmp_path):
    config = search_config()
    config.data.validation_size = 1437
    with pytest.raises(ValueError, match="data.validation_size=1437 must be smaller than the "
                                         "1437 training examples"):
        trainer.train_and_evaluate(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_an_active_search_is_part_of_the_workdirs_identity():
    plain = search_config("none").to_dict()
    identity = workdir_lib.config_identity
    # A workdir from before the search block and the validation split existed resumes as
    # a plain run with no split; an active search or a split is another config.
    older = {k: v for k, v in plain.items() if k != "search"}
    older["data"] = {k: v for k, v in plain["data"].items() if k != "validation_size"}
    no_split = search_config("none")
    no_split.data.validation_size = 0
    assert identity(older) == identity(no_split.to_dict())
    assert identity(older) != identity(plain)
    assert identity(plain) != identity(search_config().to_dict())
    other_eta = search_config()
    other_eta.search.eta = 3
    assert identity(other_eta.to_dict()) != identity(search_config().to_dict())
