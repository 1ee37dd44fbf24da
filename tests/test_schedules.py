"""graph2nn's learning-rate policies and warmup, read back from the optax optimiser.

The expected rates are graph2nn's formulas (pycls lr_policy: the rate of epoch e, set
before the epoch's first step) worked out by hand for each case and written as numbers.
"""
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import quickstart
from relgraph_jax import config_fields
from relgraph_jax.train import optim, schedules
from relgraph_jax.train.validate import validate_config

LR = 0.1


def _rates(steps, steps_per_epoch, **fields):
    """The learning rate of each step: plain SGD (no momentum or decay) on a unit gradient
    updates by -rate."""
    tc = validate_config(quickstart.get_config()).train
    tc.update(dict(lr=LR, weight_decay=0.0, momentum=0.0, nesterov=False, **fields))
    tx = optim.make_optimizer(tc, steps_per_epoch)
    params = jnp.zeros(1)
    state, rates = tx.init(params), []
    for _ in range(steps):
        update, state = tx.update(jnp.ones(1), state, params)
        rates.append(-float(update[0]))
    return np.array(rates)


def _per_step(epoch_rates, steps_per_epoch):
    return np.repeat(epoch_rates, steps_per_epoch)


def test_steps_policy_every_epoch():
    """graph2nn STEPS=[0, 2, 4], LR_MULT=0.1: BASE_LR x 0.1^(index of the last step <= e)."""
    expected = [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    got = _rates(18, 3, schedule="steps", epochs=6, lr_steps=(2, 4), lr_mult=0.1)
    np.testing.assert_allclose(got, _per_step(expected, 3), rtol=1e-6)
    constant = _rates(4, 2, schedule="steps", epochs=2, lr_steps=())
    np.testing.assert_allclose(constant, [0.1] * 4, rtol=1e-7)


def test_exp_policy_every_epoch():
    """graph2nn GAMMA=0.5: BASE_LR x 0.5^e."""
    expected = [0.1, 0.05, 0.025, 0.0125, 0.00625]
    got = _rates(10, 2, schedule="exp", epochs=5, lr_gamma=0.5)
    np.testing.assert_allclose(got, _per_step(expected, 2), rtol=1e-6)


def test_warmup_in_epochs_over_cosine_every_epoch():
    """graph2nn WARMUP_EPOCHS=3, WARMUP_FACTOR=0.1, cos over 5 epochs: for e < 3 the cosine
    rate 0.05 (1 + cos(pi e / 5)) times 0.1 (1 - e/3) + e/3, i.e. 0.1, 0.4, 0.7."""
    cosine = [0.1, 0.0904508497, 0.0654508497, 0.0345491503, 0.0095491503]
    expected = [0.01, 0.0361803399, 0.0458155948, 0.0345491503, 0.0095491503]
    np.testing.assert_allclose(np.array(cosine[:3]) * [0.1, 0.4, 0.7], expected[:3])
    got = _rates(10, 2, schedule="cosine", epochs=5, warmup=3, warmup_factor=0.1)
    np.testing.assert_allclose(got, _per_step(expected, 2), rtol=1e-6)


def test_warmup_in_steps_over_exp_every_step():
    """The same ramp counted in steps (4 steps from factor 0.2: 0.2, 0.4, 0.6, 0.8) over the
    per-epoch exp rate (3 steps an epoch, gamma 0.5: 0.1, 0.05, 0.025)."""
    expected = [0.02, 0.04, 0.06, 0.04, 0.05, 0.05, 0.025, 0.025, 0.025]
    got = _rates(9, 3, schedule="exp", epochs=3, lr_gamma=0.5, warmup=4,
                 warmup_unit="steps", warmup_factor=0.2)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_no_warmup_at_defaults_leaves_the_schedule_bitwise():
    tc = validate_config(quickstart.get_config()).train
    assert tc.warmup == 0 and tc.schedule == "cosine"
    counts = jnp.arange(40)
    alone = schedules.SCHEDULES["cosine"].make(tc, 7)(counts)
    np.testing.assert_array_equal(schedules.make_schedule(tc, 7)(counts), alone)


@pytest.mark.parametrize("field, value, message", [
    ("train.lr_steps", (0, 30), r"train.lr_steps=\(0, 30\): must be increasing epochs > 0, "
                                r"e.g. \(30, 60, 90\): graph2nn's OPTIM.STEPS without its "
                                r"leading 0"),
    ("train.lr_steps", (60, 30), r"train.lr_steps=\(60, 30\): must be increasing epochs > 0"),
    ("train.lr_steps", 30, r"train.lr_steps=30: must be increasing epochs > 0"),
    ("train.lr_mult", 0.0, r"train.lr_mult=0.0: must be > 0 and finite"),
    ("train.lr_gamma", -1.0, r"train.lr_gamma=-1.0: must be > 0 and finite"),
    ("train.warmup", -2, r"train.warmup=-2: must be >= 0 \(0 = no warmup\)"),
    ("train.warmup_unit", "iters", r"train.warmup_unit='iters': allowed \['epochs', 'steps'\]"),
    ("train.warmup_factor", 1.5, r"train.warmup_factor=1.5: must be in \[0, 1\] and finite"),
])
def test_bad_values_are_named(field, value, message):
    with pytest.raises(ValueError, match=f"^{message}"):
        config_fields.CONFIG_FIELDS[field].check(field, value)


def test_a_config_selects_them():
    config = quickstart.get_config()
    config.train.schedule = "steps"
    config.train.lr_steps = (30, 60)
    config.train.warmup, config.train.warmup_unit = 500, "steps"
    train = validate_config(config).train
    assert (tuple(train.lr_steps), train.warmup, train.warmup_unit) == ((30, 60), 500, "steps")
