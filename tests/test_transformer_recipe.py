"""The Vision Transformer's recipe as registry entries: AdamW, weight decay on kernels only,
gradient clipping, smoothed labels and a per-step cosine after a warmup from zero.

Expected values are worked out by hand (arithmetic, or numpy written from the formula), not
by the code under test; the defaults must leave the paper's SGD bit for bit as it was.
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments.configs import quickstart
from relgraph_jax import config_fields
from relgraph_jax.train import losses, optim
from relgraph_jax.train.validate import validate_config


def _train(**fields):
    """quickstart's train block, completed, with a constant schedule unless told."""
    tc = validate_config(quickstart.get_config()).train
    tc.update({**dict(schedule="steps", lr_steps=(), epochs=1, warmup=0), **fields})
    return tc


def _params():
    return {"dense": {"kernel": jnp.array([1.0, -2.0]), "bias": jnp.array([0.5])},
            "norm": {"scale": jnp.array([2.0])}, "pos_embedding": jnp.array([0.3, -0.4])}


def _grads():
    return {"dense": {"kernel": jnp.array([2.0, -1.0]), "bias": jnp.array([1.0])},
            "norm": {"scale": jnp.array([-0.5])}, "pos_embedding": jnp.array([0.25, 0.0])}


def _steps(tx, grads_seq, params):
    """The updates of successive steps (the parameters moved by each)."""
    state, out = tx.init(params), []
    for grads in grads_seq:
        update, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, update)
        out.append(update)
    return out


def _np(tree):
    return jax.tree_util.tree_map(np.asarray, tree)


def test_warmup_from_zero_in_steps_then_cosine_every_step():
    """warmup 4 steps from 0 (t / 4), cosine over 2 epochs x 5 steps: the multiplier at step
    t is min(t / 4, 1) x 0.5 (1 + cos(pi t / 10)): 0 at 0; 0.5 x 0.5 (1 + cos 0.2 pi) at 2;
    0.5 (1 + cos 0.4 pi) at the warmup's end 4; 0.5 at the middle 5; 0.5 (1 + cos 0.9 pi)
    at the last, 9. Read as the update of momentum-free SGD at lr 1 on a unit gradient."""
    tc = _train(lr=1.0, weight_decay=0.0, momentum=0.0, nesterov=False,
                schedule="cosine_steps", epochs=2, warmup=4, warmup_unit="steps",
                warmup_factor=0.0)
    tx = optim.make_optimizer(tc, 5)
    rates = [-float(u[0]) for u in _steps(tx, [jnp.ones(1)] * 10, jnp.zeros(1))]
    expected = {0: 0.0, 2: 0.5 * 0.9045084972, 4: 0.6545084972, 5: 0.5, 9: 0.0244717419}
    np.testing.assert_allclose([rates[t] for t in expected], list(expected.values()),
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        [rates[t] for t in expected],
        [min(t / 4, 1) * 0.5 * (1 + np.cos(np.pi * t / 10)) for t in expected], rtol=1e-6,
        atol=1e-7)


def _adam_first_step(g, p, lr, wd, eps, b1, b2, decays):
    """m = (1 - b1) g and v = (1 - b2) g^2, bias-corrected by 1 - b1 and 1 - b2; the
    decoupled decay wd p added where the leaf decays; all times -lr."""
    m_hat, v_hat = (1 - b1) * g / (1 - b1), (1 - b2) * g ** 2 / (1 - b2)
    return -lr * (m_hat / (np.sqrt(v_hat) + eps) + (wd * p if decays else 0.0))


RTOL_ADAM = 1e-5  # float32 rounds 1 - b2 = 0.001 (the bias correction) at ~1e-5


@pytest.mark.parametrize("decay", ["kernels", "all"])
def test_adamw_first_step_decays_what_train_decay_names(decay):
    lr, wd, eps, b1, b2 = 0.1, 0.5, 0.5, 0.9, 0.999
    tc = _train(optimizer="adamw", lr=lr, weight_decay=wd, adam_eps=eps, decay=decay)
    update, = _steps(optim.make_optimizer(tc, 1), [_grads()], _params())
    p, g = _np(_params()), _np(_grads())
    # by hand: kernel -0.1 ([2/2.5, -1/1.5] + 0.5 [1, -2]), bias -0.1 (1/1.5 [+ 0.25]), ...
    np.testing.assert_allclose(update["dense"]["kernel"], [-0.13, 0.1 * (1 / 1.5 + 1.0)],
                               rtol=RTOL_ADAM)
    want_bias = -0.1 * (1 / 1.5 + (0.25 if decay == "all" else 0.0))
    np.testing.assert_allclose(update["dense"]["bias"], [want_bias], rtol=RTOL_ADAM)
    for path in (("norm", "scale"), ("pos_embedding",)):
        leaf_p, leaf_g, got = p, g, update
        for key in path:
            leaf_p, leaf_g, got = leaf_p[key], leaf_g[key], got[key]
        np.testing.assert_allclose(
            got, _adam_first_step(leaf_g, leaf_p, lr, wd, eps, b1, b2, decay == "all"),
            rtol=RTOL_ADAM)


def test_adamw_reads_its_moment_fields():
    """A second step with a zero gradient: m = b1 (1 - b1) g, m_hat = b1 g / (1 + b1); v_hat
    = b2 g^2 / (1 + b2). With b1 = 0.5, b2 = 0.75, eps = 0.5, g = 2, no decay, lr 1: the
    update is -(2/3) / (2 sqrt(3/7) + 0.5)."""
    tc = _train(optimizer="adamw", lr=1.0, weight_decay=0.0, adam_b1=0.5, adam_b2=0.75,
                adam_eps=0.5)
    _, second = _steps(optim.make_optimizer(tc, 1), [jnp.array([2.0]), jnp.zeros(1)],
                       jnp.zeros(1))
    np.testing.assert_allclose(second, [-(2 / 3) / (2 * np.sqrt(3 / 7) + 0.5)], rtol=1e-6)


def test_sgd_at_decay_all_is_unchanged():
    """Nesterov SGD, PyTorch's: d = g + wd p, buf = mu buf + d, p -= lr (d + mu buf), over
    two steps; and bit for bit the chain it was before train.decay and train.clip_norm."""
    lr, wd, mu = 0.1, 0.5, 0.9
    tc = _train(lr=lr, weight_decay=wd, momentum=mu, nesterov=True)
    assert (tc.decay, tc.clip_norm) == ("all", 0.0)
    grads = [_grads(), jax.tree_util.tree_map(lambda g: -2.0 * g, _grads())]
    got = _steps(optim.make_optimizer(tc, 1), grads, _params())
    p, buf = _np(_params()), jax.tree_util.tree_map(np.zeros_like, _np(_params()))
    for step, g in enumerate(_np(grads)):
        d = jax.tree_util.tree_map(lambda g, p: g + wd * p, g, p)
        buf = jax.tree_util.tree_map(lambda b, d: mu * b + d, buf, d)
        want = jax.tree_util.tree_map(lambda d, b: -lr * (d + mu * b), d, buf)
        jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6),
                               _np(got[step]), want)
        p = jax.tree_util.tree_map(np.add, p, want)

    def before(learning_rate, weight_decay):
        return optax.chain(optax.add_decayed_weights(weight_decay),
                           optax.trace(decay=mu, nesterov=True),
                           optax.scale_by_schedule(lambda count: jnp.float32(1.0) ** count),
                           optax.scale(-1.0), optax.scale(learning_rate))
    old = optax.inject_hyperparams(before)(learning_rate=lr, weight_decay=wd)
    assert jax.tree_util.tree_structure(old.init(_params())) == \
        jax.tree_util.tree_structure(optim.make_optimizer(tc, 1).init(_params()))
    for a, b in zip(_steps(old, grads, _params()), got):
        jax.tree_util.tree_map(np.testing.assert_array_equal, _np(a), _np(b))


def test_sgd_at_decay_kernels_leaves_the_rest_undecayed():
    """One momentum-free step: -lr (g + wd p) on the kernel, -lr g elsewhere."""
    tc = _train(lr=0.1, weight_decay=0.5, momentum=0.0, nesterov=False, decay="kernels")
    update, = _steps(optim.make_optimizer(tc, 1), [_grads()], _params())
    np.testing.assert_allclose(update["dense"]["kernel"], [-0.25, 0.2], rtol=1e-6)
    np.testing.assert_allclose(update["dense"]["bias"], [-0.1], rtol=1e-6)
    np.testing.assert_allclose(update["norm"]["scale"], [0.05], rtol=1e-6)
    np.testing.assert_allclose(update["pos_embedding"], [-0.025, 0.0], rtol=1e-6)


def test_clip_norm_scales_the_gradient_to_its_global_norm_per_variant():
    """A gradient ([6, 0], [8]) of global norm 10 clipped to 1 is ([0.6, 0], [0.8]); plain SGD
    then moves by -lr of it. One of norm 0.5 passes unchanged. Each variant's learning rate
    (set_hyperparams, vmapped as the trainer does) still scales it."""
    tc = _train(lr=0.1, weight_decay=0.0, momentum=0.0, nesterov=False, clip_norm=1.0)
    tx = optim.make_optimizer(tc, 1)
    params = {"kernel": jnp.zeros(2), "bias": jnp.zeros(1)}
    big = {"kernel": jnp.array([6.0, 0.0]), "bias": jnp.array([8.0])}
    small = {"kernel": jnp.array([0.3, 0.0]), "bias": jnp.array([0.4])}
    clipped, unclipped = _steps(tx, [big, small], params)
    np.testing.assert_allclose(clipped["kernel"], [-0.06, 0.0], rtol=1e-6)
    np.testing.assert_allclose(clipped["bias"], [-0.08], rtol=1e-6)
    np.testing.assert_allclose(unclipped["kernel"], [-0.03, 0.0], rtol=1e-6)
    # Vmapped, each variant is clipped by its own norm: the first's gradient of norm 10 to
    # 1 at lr 0.1, the second's of norm 0.5 left alone at lr 0.2.
    states = [optim.set_hyperparams(tx.init(params), lr, 0.0) for lr in (0.1, 0.2)]
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *states)
    grads = jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), big, small)
    both = jax.tree_util.tree_map(lambda x: jnp.stack([x, x]), params)
    update, _ = jax.vmap(tx.update)(grads, stacked, both)
    np.testing.assert_allclose(update["bias"][:, 0], [-0.08, -0.08], rtol=1e-6)
    np.testing.assert_allclose(update["kernel"][:, 0], [-0.06, -0.06], rtol=1e-6)


def test_smoothed_cross_entropy_by_hand():
    """logits [2, 0], label 0, alpha 0.1: targets [0.95, 0.05], loss = logsumexp - 0.95 x 2
    = 0.1 + log(1 + e^-2). logits [1, 0, 0], label 2, alpha 0.3: targets [0.1, 0.1, 0.8],
    loss = log(e + 2) - 0.1. alpha 0 is the plain cross-entropy."""
    smoothed = losses.LOSSES["smoothed_cross_entropy"].make(_train(label_smoothing=0.1))
    np.testing.assert_allclose(smoothed(jnp.array([[2.0, 0.0]]), jnp.array([0])),
                               [0.1 + np.log1p(np.exp(-2.0))], rtol=1e-6)
    three = losses.LOSSES["smoothed_cross_entropy"].make(_train(label_smoothing=0.3))
    np.testing.assert_allclose(three(jnp.array([[1.0, 0.0, 0.0]]), jnp.array([2])),
                               [np.log(np.e + 2) - 0.1], rtol=1e-6)
    none = losses.LOSSES["smoothed_cross_entropy"].make(_train(label_smoothing=0.0))
    np.testing.assert_allclose(none(jnp.array([[2.0, 0.0]]), jnp.array([0])),
                               [np.log1p(np.exp(-2.0))], rtol=1e-6)


@pytest.mark.parametrize("field, value, message", [
    ("train.adam_b1", 1.0, r"train\.adam_b1=1\.0: must be in \[0, 1\) and finite"),
    ("train.adam_b2", -0.1, r"train\.adam_b2=-0\.1: must be in \[0, 1\) and finite"),
    ("train.adam_eps", 0.0, r"train\.adam_eps=0\.0: must be > 0 and finite"),
    ("train.decay", "biases", r"train\.decay='biases': allowed \['all', 'kernels'\]"),
    ("train.clip_norm", -1.0, r"train\.clip_norm=-1\.0: must be >= 0 \(0 = off\) and finite"),
    ("train.clip_norm", "1", r"train\.clip_norm='1': must be a number >= 0 \(0 = off\), got str"),
    ("train.label_smoothing", 1.0,
     r"train\.label_smoothing=1\.0: must be in \[0, 1\) and finite"),
])
def test_bad_values_are_refused_in_one_line(field, value, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        config_fields.CONFIG_FIELDS[field].check(field, value)
    config = quickstart.get_config()
    config.train = dict(config.train.to_dict(), **{field.split(".")[1]: value})
    with pytest.raises(ValueError, match=f"^{message}$"):
        validate_config(config)


def test_a_config_selects_the_recipe():
    config = quickstart.get_config()
    config.train.update(dict(optimizer="adamw", loss="smoothed_cross_entropy",
                             schedule="cosine_steps", warmup=10, warmup_unit="steps",
                             warmup_factor=0.0, decay="kernels", clip_norm=1.0))
    train = validate_config(config).train
    assert (train.optimizer, train.loss, train.schedule, train.decay, train.clip_norm,
            train.label_smoothing) == ("adamw", "smoothed_cross_entropy", "cosine_steps",
                                       "kernels", 1.0, 0.1)


def test_an_optimisers_own_fields_are_inert_under_another():
    """adam_b1 changes nothing under SGD, nor momentum under AdamW, nor label_smoothing
    under plain cross-entropy: none of them changes a workdir's identity there."""
    def kept(**fields):
        return set(config_fields.identity({f"train.{k}": v for k, v in fields.items()}))
    assert kept(optimizer="sgd", adam_b1=0.8) == set()
    assert kept(optimizer="adamw", adam_b1=0.8) == {"train.optimizer", "train.adam_b1"}
    assert kept(optimizer="adamw", momentum=0.5, nesterov=False) == {"train.optimizer"}
    assert kept(momentum=0.5) == {"train.momentum"}
    assert kept(label_smoothing=0.2) == set()
    assert kept(loss="smoothed_cross_entropy", label_smoothing=0.2) == {"train.loss",
                                                                       "train.label_smoothing"}


def test_memory_estimate_counts_the_optimisers_state():
    """SGD keeps one copy of the parameters (momentum), AdamW two (first and second moment)."""
    from relgraph_jax.train import memory
    assert (memory._state_copies("sgd"), memory._state_copies("adamw")) == (1, 2)
