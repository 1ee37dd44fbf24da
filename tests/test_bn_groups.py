"""BatchNorm as the authors trained: statistics over groups of G examples ("ghost" BN) and
precise BN (running statistics re-estimated after every epoch).

A tiny Dense-BatchNorm-ReLU-Dense net is checked against numpy (forward, loss, batch
statistics, precise estimates) and against a per-group flax loop (gradients), on 1 or 8
devices; then the trainer end to end: precise BN after every epoch, resumed bitwise.

Speed: a bucket's programs are built once per configuration and shared by the tests
(`_setup`), and so are results that several tests check (`_trained`, `_precise_streamed`).
Programs checked against numpy within tolerances compile with helpers.FAST; those compared
bit for bit across device layouts keep XLA's default options, as the trainer runs them.
The suite's compilation cache (tests/conftest.py) lets the trainer's second and third
runs of one sweep load the programs the first compiled.
"""
import dataclasses
import functools
import os
import sys
import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from relgraph_jax import data as data_lib
from relgraph_jax.train import feeds, losses, mesh as mesh_lib, programs as programs_lib
from relgraph_jax.train import step as step_lib, trainer
from relgraph_jax.train import variants as variants_lib
from relgraph_jax.train.state import TrainState

sys.path.insert(0, os.path.dirname(__file__))
from helpers import FAST, fast_programs, fast_trainer_compiles  # noqa: E402
from test_train import _records, tiny_config  # noqa: E402

B, HIDDEN, CLASSES, EPS = 16, 5, 3, 1e-5
IMAGE = (2, 2, 1)  # flattened to 4 features
SPEC = data_lib.parse({"source": "digits", "augment": False})
STEPS_PER_EPOCH = 4
# The optimisers, by name, so that tests asking for the same one share compiled programs.
TXS = {"sgd(1)": optax.sgd(1.0), "sgd(0.1)": optax.sgd(0.1),
       "momentum": optax.sgd(0.1, momentum=0.9)}


class TinyNet(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(HIDDEN)(x.reshape((x.shape[0], -1)))
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=EPS)(x)
        return nn.Dense(CLASSES)(nn.relu(x))


@dataclasses.dataclass(frozen=True)
class Setup:
    """A bucket's programs and the mesh they run on."""
    programs: programs_lib.Programs
    mesh: object

    @property
    def shard(self):
        return mesh_lib.shardings(self.mesh)

    def put(self, tree):
        """Host arrays with a leading variant axis -> split over the "variants" devices."""
        return mesh_lib.put(tree, self.shard.variants)

    def replicate(self, tree):
        return mesh_lib.put(tree, self.shard.replicated)


@functools.cache
def _setup(group, tx="sgd(1)", devices=1, data=1, variant_batch=1, fast=False) -> Setup:
    """The programs of a TinyNet bucket, built once per configuration: jit caches what
    they compile, so every test using the same configuration compiles nothing again.
    fast: every program compiles with helpers.FAST (`helpers.fast_programs`)."""
    mesh = mesh_lib.make_mesh(data, devices)
    cfg = step_lib.StepConfig(TinyNet(), TXS[tx], losses.cross_entropy, STEPS_PER_EPOCH,
                              bn_group_size=group,
                              batch_spec=mesh_lib.batch_spec(mesh))
    batches = programs_lib.BatchConfig(batch_size=B, eval_batch_size=B, mean=(0.0,),
                                       std=(1.0,), data_spec=SPEC)
    programs = programs_lib.build(cfg, batches, mesh, variant_batch)
    return Setup(fast_programs(programs) if fast else programs, mesh)


@functools.cache
def _host_state(num_variants, tx, failed=()) -> TrainState:
    """Variants with their own initial parameters and non-trivial running statistics
    (host numpy, stacked on a leading variant axis; cached, so never modify it)."""
    per = []
    for v in range(num_variants):
        variables = TinyNet().init(jax.random.key(v), np.zeros((1,) + IMAGE), train=False)
        stats = {"BatchNorm_0": {"mean": np.full(HIDDEN, 0.1 * v, np.float32),
                                 "var": np.full(HIDDEN, 1.0 + v, np.float32)}}
        params = jax.device_get(variables["params"])
        fresh = TrainState.fresh({"params": params, "batch_stats": stats, "masks": {}},
                                 jax.device_get(TXS[tx].init(params)))
        per.append(fresh.replace(failed=np.bool_(v in failed)))
    return variants_lib.stack(per)


def _batches(num):
    """`num` steps' batches of 2 seeds: images (num, 2, B, ...), labels (num, 2, B)."""
    rng = np.random.default_rng(0)
    images = rng.normal(size=(num, 2, B) + IMAGE).astype(np.float32)
    labels = rng.integers(0, CLASSES, (num, 2, B)).astype(np.int32)
    return images, labels


def _seed_index(num_variants):
    """A bucket's seed_index: variants alternate between the 2 seeds' batches."""
    return (np.arange(num_variants) % 2).astype(np.int32)


def _train(setup: Setup, host_state, images, labels) -> TrainState:
    """Streamed training steps 0, 1, .. of every variant on its seed's batch."""
    state = setup.put(host_state)
    seed_index = setup.put(_seed_index(len(host_state.failed)))
    for i in range(len(images)):
        x, y = setup.replicate((images[i], labels[i]))
        state = setup.programs.train_streamed(state, seed_index, x, y, jnp.int32(i))
    return mesh_lib.fetch(state)


@functools.cache
def _trained(group, tx, num_variants, num_steps, **setup_kwargs) -> TrainState:
    """`_train` of `_host_state(num_variants, tx)` on `_batches(num_steps)`, once."""
    return _train(_setup(group, tx, **setup_kwargs), _host_state(num_variants, tx),
                  *_batches(num_steps))


def _variant(tree, v):
    return jax.tree.map(lambda a: np.asarray(a)[v], tree)


# ---- numpy references -----------------------------------------------------------------
def _np_hidden(params, x):
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    return x.reshape(len(x), -1).astype(np.float64) @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]


def _np_group_stats(params, x, group):
    """Batch mean and (biased) variance of the BatchNorm input, per group: (groups, HIDDEN)."""
    h = _np_hidden(params, x).reshape(-1, group, HIDDEN)
    return h.mean(1), h.var(1)


def _np_loss(params, x, labels, group):
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    h = _np_hidden(params, x).reshape(-1, group, HIDDEN)
    y = (h - h.mean(1, keepdims=True)) / np.sqrt(h.var(1, keepdims=True) + EPS)
    y = np.maximum(y * p["BatchNorm_0"]["scale"] + p["BatchNorm_0"]["bias"], 0).reshape(len(x), -1)
    logits = y @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"]
    top = logits.max(1, keepdims=True)
    logsumexp = np.log(np.exp(logits - top).sum(1)) + top[:, 0]
    return np.mean(logsumexp - logits[np.arange(len(x)), labels])


@functools.partial(jax.jit, static_argnums=4, compiler_options=FAST)
def _looped_grads(params, stats, x, labels, group):
    """Gradient of the mean loss, each group applied on its own (a Python loop of flax calls,
    compiled: run op by op it takes seconds)."""
    def loss(params):
        total = 0.0
        for g in range(0, len(x), group):
            logits, _ = TinyNet().apply({"params": params, "batch_stats": stats}, x[g:g + group],
                                        train=True, mutable=["batch_stats"])
            total += optax.softmax_cross_entropy_with_integer_labels(
                logits, labels[g:g + group]).sum()
        return total / len(x)
    return jax.grad(loss)(params)


# ---- ghost BatchNorm ------------------------------------------------------------------
@pytest.mark.parametrize("group", [4, 0])
def test_one_step_matches_numpy_and_a_per_group_loop(group):
    """Loss, new running statistics and gradients of one SGD(lr=1) step, per variant on its
    seed's batch."""
    g = group or B
    host = _host_state(2, "sgd(1)")
    images, labels = _batches(1)
    got = _trained(group, "sgd(1)", 2, 1, fast=True)
    for v in range(2):
        before, after = _variant(host, v), _variant(got, v)
        x, y = images[0, v % 2], labels[0, v % 2]
        np.testing.assert_allclose(after.loss_sum, _np_loss(before.params, x, y, g), rtol=1e-5)
        m, var = _np_group_stats(before.params, x, g)
        old = before.batch_stats["BatchNorm_0"]
        new = after.batch_stats["BatchNorm_0"]
        np.testing.assert_allclose(new["mean"], 0.9 * old["mean"] + 0.1 * m.mean(0),
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(new["var"], 0.9 * old["var"] + 0.1 * var.mean(0),
                                   rtol=1e-5, atol=1e-6)
        grads = _looped_grads(before.params, before.batch_stats, x, y, g)
        stepped = jax.tree.map(lambda p, d: p - d, before.params, grads)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                     after.params, stepped)


def test_group_statistics_differ_from_whole_batch_ones():
    ghost = _trained(4, "sgd(1)", 2, 1, fast=True)
    whole = _trained(0, "sgd(1)", 2, 1, fast=True)
    assert not np.allclose(ghost.loss_sum, whole.loss_sum, rtol=1e-3)


def test_one_group_of_the_whole_batch_is_plain_batchnorm():
    """Both build the same program (so FAST options compare the same thing as default ones)."""
    one_group = _trained(B, "sgd(0.1)", 2, 3, fast=True)
    plain = _trained(0, "sgd(0.1)", 2, 3, fast=True)
    jax.tree.map(np.testing.assert_array_equal, one_group, plain)


def test_devices_variant_batch_and_data_axis_keep_the_groups():
    """8 variants, 3 steps of ghost BN (groups of 4): 1 or 8 devices give the same bits
    (XLA's default options, as the trainer compiles); all variants vmapped at once, or each
    batch split over 2 devices (2 groups each), give the same training up to float
    rounding."""
    want = _trained(4, "momentum", 8, 3, devices=1)
    eight = _trained(4, "momentum", 8, 3, devices=8)
    jax.tree.map(np.testing.assert_array_equal, eight, want)
    for kwargs in (dict(devices=8, variant_batch=0), dict(devices=8, data=2)):
        got = _trained(4, "momentum", 8, 3, fast=True, **kwargs)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6),
                     got, want)
    whole = _trained(0, "momentum", 8, 3, devices=8, fast=True)
    assert not np.allclose(whole.loss_sum, want.loss_sum, rtol=1e-3)


# ---- precise BN -----------------------------------------------------------------------
def _np_precise(params, batches, group):
    """graph2nn's estimate: mean of the groups' batch means, mean(v + m^2) - mean^2."""
    m, v = zip(*(_np_group_stats(params, x, group) for x in batches))
    m, v = np.concatenate(m), np.concatenate(v)
    mean = m.mean(0)
    return mean, (v + m ** 2).mean(0) - mean ** 2


PRECISE_TX = "momentum"
PRECISE_HOST = _host_state(8, PRECISE_TX, failed=(2,))  # variant 2 is frozen
PRECISE_IMAGES = _batches(2)[0]


@functools.cache
def _precise_streamed(group, devices=1, variant_batch=1, fast=False) -> TrainState:
    """Precise BN from two streamed batches per seed, as the trainer runs it for a stream."""
    setup = _setup(group, PRECISE_TX, devices=devices, variant_batch=variant_batch, fast=fast)
    programs = setup.programs
    state, seed_index = setup.put(PRECISE_HOST), setup.put(_seed_index(8))
    sums = None
    for batch in PRECISE_IMAGES:
        got = programs.bn_moments_streamed(state, seed_index, setup.replicate(batch))
        sums = got if sums is None else jax.tree.map(jnp.add, sums, got)
    return mesh_lib.fetch(programs.set_precise_bn(state, sums, 2, jnp.int32(7)))


@pytest.mark.parametrize("group", [4, 0])
def test_precise_bn_of_streamed_batches_matches_numpy(group):
    """The frozen variant keeps its statistics; parameters and optimiser state are never
    touched."""
    host, images = PRECISE_HOST, PRECISE_IMAGES
    out = _precise_streamed(group, fast=group != 4)  # groups of 4: shared with the next test
    for v in range(8):
        before, after = _variant(host, v), _variant(out, v)
        new = after.batch_stats["BatchNorm_0"]
        if v == 2:
            jax.tree.map(np.testing.assert_array_equal, after.batch_stats, before.batch_stats)
        else:
            mean, var = _np_precise(before.params, images[:, v % 2], group or B)
            np.testing.assert_allclose(new["mean"], mean, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(new["var"], var, rtol=1e-4, atol=1e-6)
        for key in ("params", "opt_state", "failed", "failed_step", "loss_sum"):
            jax.tree.map(np.testing.assert_array_equal, getattr(after, key), getattr(before, key))


def test_precise_bn_on_eight_devices_and_all_variants_at_once():
    want = _precise_streamed(4)
    jax.tree.map(np.testing.assert_array_equal, _precise_streamed(4, devices=8), want)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 _precise_streamed(4, devices=8, variant_batch=0, fast=True), want)


def _sweep(setup: Setup, host_state, feed, resident) -> trainer.Sweep:
    """A one-bucket Sweep of `host_state` (variants alternating between 2 seeds)."""
    slots = len(host_state.failed)
    bucket = trainer.Bucket(variants=[], widths=(), slots=slots, programs=setup.programs,
                            state=setup.put(host_state), seed_index=setup.put(_seed_index(slots)))
    return trainer.Sweep([bucket], feed, resident, STEPS_PER_EPOCH, setup.shard)


def test_precise_bn_of_resident_batches_matches_numpy():
    """The resident program takes the batches `start_step ..` of the device-resident data:
    here trainer.precise_bn asks for the first two of epoch 5, in the order
    epoch_order(seed, 5, n)."""
    host = _host_state(2, "sgd(0.1)")
    n, epoch, seeds = 4 * B, 5, (3, 7)
    x_all = np.random.default_rng(2).integers(0, 256, (n,) + IMAGE).astype(np.uint8)
    y_all = np.zeros(n, np.int32)
    setup = _setup(4, "sgd(0.1)", fast=True)
    ds = types.SimpleNamespace(x_train=x_all, y_train=y_all, x_test=x_all[:B], y_test=y_all[:B],
                               num_val=0)
    feed = feeds.ResidentFeed(ds, setup.shard, list(seeds), B, STEPS_PER_EPOCH)
    sweep = _sweep(setup, host, feed, resident=True)
    trainer.precise_bn(sweep, epoch, 2, 3)
    out = mesh_lib.fetch(sweep.buckets[0].state)
    for v, seed in enumerate(seeds):
        order = np.asarray(data_lib.epoch_order(seed, epoch, n))
        batches = [x_all[order[i * B:(i + 1) * B]].astype(np.float32) for i in range(2)]
        mean, var = _np_precise(_variant(host, v).params, batches, 4)
        new = _variant(out, v).batch_stats["BatchNorm_0"]
        np.testing.assert_allclose(new["mean"], mean, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(new["var"], var, rtol=1e-4, atol=1e-3)


def test_stream_feed_precise_bn_takes_the_epochs_first_batches():
    """For a StreamFeed (ImageNet), trainer.precise_bn decodes the first batches of the
    asked epoch for every seed, closes its iterators, and every bucket gets numpy's
    estimate."""
    class FakeStream:
        num_test, opened, closed = 0, [], []

        def train_batches(self, batch_size, seeds, epoch, first_batch=0, num_batches=None,
                          process_index=0, process_count=1):
            self.opened.append((tuple(seeds), epoch, first_batch, num_batches))
            rngs = [np.random.default_rng([seed, epoch]) for seed in seeds]
            shape = (len(seeds), batch_size)
            try:
                while True:
                    images = np.stack([r.normal(size=(batch_size,) + IMAGE) for r in rngs])
                    yield data_lib.Batch(images.astype(np.float32), np.zeros(shape, np.int32),
                                         np.ones(shape, bool),
                                         np.zeros(shape + IMAGE[-1:], np.float32))
            finally:
                self.closed.append(tuple(seeds))

    stream, host = FakeStream(), _host_state(2, "sgd(0.1)")
    setup = _setup(4, "sgd(0.1)", fast=True)
    feed = feeds.StreamFeed(stream, setup.shard, [3, 7], B, B, steps_per_epoch=STEPS_PER_EPOCH)
    sweep = _sweep(setup, host, feed, resident=False)
    trainer.precise_bn(sweep, 9, 3, 8)
    assert stream.opened == [((3, 7), 9, 0, 3)] and stream.closed == [(3, 7)]
    out = mesh_lib.fetch(sweep.buckets[0].state)
    for v, seed in enumerate((3, 7)):
        rng = np.random.default_rng([seed, 9])
        batches = [rng.normal(size=(B,) + IMAGE).astype(np.float32) for _ in range(3)]
        mean, var = _np_precise(_variant(host, v).params, batches, 4)
        new = _variant(out, v).batch_stats["BatchNorm_0"]
        np.testing.assert_allclose(new["mean"], mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(new["var"], var, rtol=1e-4, atol=1e-6)


# ---- the trainer ----------------------------------------------------------------------
def _bn_config():
    """The trainer tests' sweep (2 graphs here, to keep it fast) with ghost BN (4 groups
    of 32) and precise BN from 256 samples (2 batches)."""
    config = tiny_config(bn_group_size=32, precise_bn_samples=256)
    config.graphs = "paper:n16_48/0;complete:n=16"
    return config


@pytest.fixture(scope="module")
def fast_trainer_programs():
    """The trainer's programs compiled with helpers.FAST. What these tests check (when
    precise BN runs, that a resume continues bit for bit) does not depend on XLA's
    optimisations; the bitwise checks across device layouts above keep the defaults."""
    with fast_trainer_compiles():
        yield


@pytest.fixture(scope="module")
def bn_reference(tmp_path_factory, fast_trainer_programs):
    workdir = str(tmp_path_factory.mktemp("bn_reference"))
    assert trainer.train_and_evaluate(_bn_config(), workdir)["finished"]
    return _records(workdir)


def test_precise_bn_runs_after_every_epoch_and_resumes_bitwise(bn_reference, tmp_path,
                                                                monkeypatch,
                                                                fast_trainer_programs):
    calls = []
    original = trainer.precise_bn

    def counted(sweep, epoch, num_batches, step):
        calls.append((epoch, num_batches, step))
        return original(sweep, epoch, num_batches, step)

    monkeypatch.setattr(trainer, "precise_bn", counted)
    workdir = str(tmp_path)
    # Stops 3 steps after epoch 1's precise BN; the resume carries on from those statistics.
    assert trainer.train_and_evaluate(_bn_config(), workdir, stop_after_steps=14)["step"] == 14
    trainer.train_and_evaluate(_bn_config(), workdir)
    assert _records(workdir) == bn_reference
    assert all(r["status"] == "ok" for r in bn_reference)
    # 256 samples = 2 batches of 128, from epochs 3 and 4 that training (2 epochs) never feeds.
    assert calls == [(3, 2, 11), (4, 2, 22)]


# ---- bad values -----------------------------------------------------------------------
@pytest.mark.parametrize("field,value,data,message", [
    ("bn_group_size", 48, 1, "train.bn_group_size=48: must be 0 (BatchNorm statistics over the "
     "whole batch) or a positive integer dividing the per-device batch train.batch_size / "
     "mesh.data = 128 / 1"),
    ("bn_group_size", 128, 2, "train.bn_group_size=128: must be 0 (BatchNorm statistics over "
     "the whole batch) or a positive integer dividing the per-device batch train.batch_size / "
     "mesh.data = 128 / 2"),
    ("bn_group_size", -4, 1, "train.bn_group_size=-4: must be 0"),
    ("precise_bn_samples", 100, 1, "train.precise_bn_samples=100: must be 0 (off) or a positive "
     "multiple of train.batch_size=128"),
    ("precise_bn_samples", -128, 1, "train.precise_bn_samples=-128: must be 0 (off)"),
])
def test_bad_batchnorm_settings_fail_before_loading(field, value, data, message, tmp_path,
                                                    monkeypatch):
    monkeypatch.setattr(trainer, "_open_data", lambda *a: pytest.fail("loaded data"))
    config = tiny_config(**{field: value})
    config.mesh.data = data
    with pytest.raises(ValueError) as info:
        trainer.train_and_evaluate(config, str(tmp_path / "run"))
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
    assert not (tmp_path / "run" / "config.json").exists()
