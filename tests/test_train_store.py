"""Results store, workdir guard and optimiser: the trainer's host-side pieces."""
import itertools
import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from relgraph_jax import results
from relgraph_jax.train import optim, variants as variants_lib, workdir


def _rec(variant, epoch, err=10.0):
    return {"variant": variant, "epoch": epoch, "test_error": err}


def test_results_store_dedupes_and_survives_reopen(tmp_path):
    store = results.ResultsStore(str(tmp_path))
    assert store.append([_rec(0, 1), _rec(1, 1)]) == 2
    assert store.append([_rec(0, 1, 99.0), _rec(0, 2)]) == 1
    reopened = results.ResultsStore(str(tmp_path))
    assert reopened.append([_rec(1, 1), _rec(1, 2)]) == 1
    recs = results.read_records(store.path)
    assert [(r["variant"], r["epoch"]) for r in recs] == [(0, 1), (1, 1), (0, 2), (1, 2)]
    assert recs[0]["test_error"] == 10.0  # the first write wins, never overwritten


def test_results_store_repairs_torn_last_line(tmp_path):
    path = tmp_path / results.RESULTS_FILE
    good = json.dumps(_rec(0, 1)) + "\n"
    torn = json.dumps(_rec(1, 1))[:-7]
    path.write_text(good + torn)
    store = results.ResultsStore(str(tmp_path))
    assert store.repaired_bytes == len(torn)
    assert path.read_text() == good
    assert store.append([_rec(1, 1)]) == 1
    assert [(r["variant"], r["epoch"]) for r in results.read_records(str(path))] == [(0, 1), (1, 1)]


def test_workdir_refuses_a_different_config(tmp_path):
    cfg = {"train": {"lr": 0.1, "epochs": 5, "log_every_steps": 10}, "graphs": "paper:n64_52"}
    assert workdir.check_compatible(str(tmp_path), cfg) is False
    workdir.claim(str(tmp_path), cfg)
    same_but_logging = {"train": {"lr": 0.1, "epochs": 5, "log_every_steps": 99},
                        "graphs": "paper:n64_52"}
    assert workdir.check_compatible(str(tmp_path), same_but_logging) is True
    workdir.claim(str(tmp_path), same_but_logging)  # a resume keeps the stored config
    stored = json.loads((tmp_path / workdir.CONFIG_FILE).read_text())
    assert stored["train"]["log_every_steps"] == 10
    other = {"train": {"lr": 0.2, "epochs": 5, "log_every_steps": 10}, "graphs": "paper:n64_52"}
    with pytest.raises(ValueError, match=r"train\.lr: 0\.1 there vs 0\.2 now.*new --workdir"):
        workdir.check_compatible(str(tmp_path), other)
    # The refusal leaves the stored config untouched.
    assert json.loads((tmp_path / workdir.CONFIG_FILE).read_text())["train"]["lr"] == 0.1


def test_unwritable_workdir_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="is not writable"):
        workdir.check_writable(str(blocker / "sub"))


def _torch_style_sgd(params, grads_seq, lr, wd, momentum, lr_mult):
    """Hand-written PyTorch SGD(nesterov) semantics, the reference for the optax chain."""
    p, buf = params.copy(), np.zeros_like(params)
    for g, mult in zip(grads_seq, lr_mult):
        d = g + wd * p
        buf = momentum * buf + d
        p = p - lr * mult * (d + momentum * buf)
    return p


def test_optimizer_matches_pytorch_sgd_nesterov_with_epoch_cosine():
    tc = ml_collections.ConfigDict(dict(lr=0.1, weight_decay=5e-4, momentum=0.9, schedule="cosine",
                                        optimizer="sgd",
                                        nesterov=True, epochs=4))
    steps_per_epoch = 3
    tx = optim.make_optimizer(tc, steps_per_epoch)
    rng = np.random.default_rng(0)
    p0 = rng.normal(size=5).astype(np.float64)
    grads = [rng.normal(size=5) for _ in range(12)]
    state = tx.init(jnp.asarray(p0, jnp.float32))
    p = jnp.asarray(p0, jnp.float32)
    for g in grads:
        upd, state = tx.update(jnp.asarray(g, jnp.float32), state, p)
        p = p + upd
    mult = [0.5 * (1 + np.cos(np.pi * (i // steps_per_epoch) / 4)) for i in range(12)]
    np.testing.assert_allclose(np.asarray(p), _torch_style_sgd(p0, grads, 0.1, 5e-4, 0.9, mult),
                               rtol=1e-5, atol=1e-6)


def test_per_variant_hyperparams_under_vmap():
    tc = ml_collections.ConfigDict(dict(lr=0.1, weight_decay=0.0, momentum=0.0, schedule="cosine",
                                        optimizer="sgd",
                                        nesterov=False, epochs=1))
    tx = optim.make_optimizer(tc, 10)
    params = jnp.ones((3, 2))
    states = jax.vmap(tx.init)(params)
    states.hyperparams["learning_rate"] = jnp.array([0.1, 0.2, 0.3])
    states.hyperparams["weight_decay"] = jnp.zeros(3)
    upd, _ = jax.vmap(tx.update)(jnp.ones((3, 2)), states, params)
    np.testing.assert_allclose(np.asarray(upd[:, 0]), [-0.1, -0.2, -0.3], rtol=1e-6)


def _variants_of_widths(widths, structures=None):
    """Variants of one-stage widths (ints) or width lists (tuples), with optional structures."""
    structures = structures or [()] * len(widths)
    return [variants_lib.Variant(i, None, 0, 0.1, 0.0, w if isinstance(w, tuple) else (w,), 0, 0, st)
            for i, (w, st) in enumerate(zip(widths, structures))]


def _brute_force_cost(widths, k, cost):
    """Least total cost over every split of the sorted widths into at most k runs."""
    ws = sorted(widths)
    best = float("inf")
    for parts in range(1, k + 1):
        for cuts in itertools.combinations(range(1, len(ws)), parts - 1):
            bounds = (0,) + cuts + (len(ws),)
            best = min(best, sum((b - a) * cost(ws[b - 1]) for a, b in zip(bounds, bounds[1:])))
    return best


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_width_buckets_minimise_padded_cost(k):
    widths = [525, 1539, 843, 1200, 610, 1530, 849, 1013, 1539]
    cost = lambda w: w * w + 512 * w  # noqa: E731 - the mask path's MACs per sample
    groups = variants_lib.width_buckets(_variants_of_widths(widths), k, lambda ws: cost(ws[0]))
    assert len(groups) <= k
    assert sorted(v.id for g in groups for v in g) == list(range(len(widths)))
    assert all([v.id for v in g] == sorted(v.id for v in g) for g in groups)
    got = sum(len(g) * cost(max(v.width for v in g)) for g in groups)
    assert got == _brute_force_cost(widths, k, cost)
    # groups are runs of neighbouring widths
    spans = sorted((min(v.width for v in g), max(v.width for v in g)) for g in groups)
    assert all(hi < lo for (_, hi), (lo, _) in zip(spans, spans[1:]))


def test_width_buckets_never_exceed_the_distinct_widths():
    groups = variants_lib.width_buckets(_variants_of_widths([64, 64, 80]), 8, lambda w: w[0])
    assert sorted(len(g) for g in groups) == [1, 2]
    with pytest.raises(ValueError, match=r"train\.width_buckets=0: must be a positive integer"):
        variants_lib.width_buckets(_variants_of_widths([64]), 0, lambda w: w[0])


def test_width_buckets_pad_stage_by_stage_and_keep_structures_apart():
    # ResNet-34's complete graph (identity first block) and two graphs (projection).
    widths = [(64, 128, 256, 512), (165, 328, 659, 1318), (164, 331, 658, 1316)]
    structures = [("identity",), ("projection",), ("projection",)]
    variant_list = _variants_of_widths(widths, structures)
    groups = variants_lib.width_buckets(variant_list, 1, lambda w: sum(w))
    assert [[v.id for v in g] for g in groups] == [[0], [1, 2]]
    assert variants_lib.widest(groups[1]) == (165, 331, 659, 1318)
