"""What one variant does in a step: pure functions of (state, batch), no devices, no loops.

`train_step` is the update rule, readable top to bottom. `eval_batch`, `bn_moments` and
`set_precise_bn` are the evaluation and precise-BatchNorm counterparts. Wrapping them for
many variants, devices and chunks of steps happens once, in `programs.py`.

BatchNorm as the authors trained (graph2nn, 8 GPUs without synchronised BatchNorm):
`bn_group_size` G normalises each group of G examples with its own statistics ("ghost"
BatchNorm), and precise BN replaces the running statistics by the average of many
batches' statistics. See docs/batchnorm.md.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import traverse_util

from relgraph_jax.train.state import TrainState, variables_of


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """What a bucket's steps share and never change: the model, optimiser, loss and batch
    layout.

    loss: (logits, labels) -> per-example loss (train/losses.py). bn_group_size: examples
    per BatchNorm group, 0 for the whole batch. batch_spec: how a batch is split over the
    mesh's "data" axis (None: not split). compute_dtype: the dtype of the layer arithmetic
    (parameters stay float32).
    """
    model: nn.Module
    tx: optax.GradientTransformation
    loss: Callable
    steps_per_epoch: int
    bn_group_size: int = 0
    compute_dtype: Any = jnp.float32
    batch_spec: Any = None


def train_step(state: TrainState, images, labels, step, cfg: StepConfig) -> TrainState:
    """One SGD step of one variant on normalised images; a non-finite step freezes it.

    The loss is the batch mean of `cfg.loss`; with BatchNorm groups the gradient
    is that of one big batch except for the statistics, and the new running statistics are
    the mean of those each group leaves.
    """
    x = _constrained(images.astype(cfg.compute_dtype), cfg)

    def loss_fn(params):
        logits, group_stats = _apply_train(cfg, _in_compute_dtype(state, params, cfg), x)
        return (cfg.loss(logits, labels).mean(),
                jax.tree.map(lambda s: s.mean(0), group_stats))

    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = cfg.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)

    ok = jnp.isfinite(loss) & tree_all_finite(params) & tree_all_finite(batch_stats)
    counted = ok & ~state.failed
    new = adopt_or_freeze(state, ok, step, params=params, batch_stats=batch_stats,
                          opt_state=opt_state)
    fresh_epoch = step % cfg.steps_per_epoch == 0
    return new.replace(
        loss_sum=jnp.where(fresh_epoch, 0.0, state.loss_sum) + jnp.where(counted, loss, 0.0),
        loss_count=jnp.where(fresh_epoch, 0.0, state.loss_count) + counted.astype(jnp.float32))


def eval_batch(state: TrainState, images, labels, cfg: StepConfig):
    """Per-example loss and correctness of one variant on one batch of normalised images.

    Sums are left to the host (float64), so they do not depend on how XLA tiles a
    reduction for a given number of variants per device.
    """
    x = _constrained(images.astype(cfg.compute_dtype), cfg)
    logits = cfg.model.apply(_in_compute_dtype(state, state.params, cfg), x, train=False)
    return cfg.loss(logits, labels), jnp.argmax(logits, -1) == labels


def bn_moments(state: TrainState, images, cfg: StepConfig):
    """Sums over the BatchNorm groups of one batch of each layer's batch mean m ("mean"
    leaves) and of v + m^2 ("var" leaves, v the batch variance): what precise BN averages.

    The model runs from zeroed running statistics, so flax's update leaves
    (1 - momentum) x the batch statistic, which is divided back out.
    """
    variables = _in_compute_dtype(state, state.params, cfg)
    variables["batch_stats"] = jax.tree.map(jnp.zeros_like, variables["batch_stats"])
    momenta = set()

    def spy(next_fun, args, kwargs, context):
        if isinstance(context.module, nn.BatchNorm):
            momenta.add(context.module.momentum)
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(spy):
        _, stats = _apply_train(cfg, variables, _constrained(images.astype(cfg.compute_dtype), cfg))
    if len(momenta) > 1:
        raise ValueError(f"precise BN needs one BatchNorm momentum, the model has {momenta}")
    kept = 1 - (momenta.pop() if momenta else 0.0)
    flat = traverse_util.flatten_dict(jax.tree.map(lambda s: s / kept, stats))
    return traverse_util.unflatten_dict({
        path: (s if path[-1] == "mean" else s + flat[path[:-1] + ("mean",)] ** 2).sum(0)
        for path, s in flat.items()})


def set_precise_bn(state: TrainState, sums, num_groups, step) -> TrainState:
    """Running statistics mean_i(m_i) and mean_i(v_i + m_i^2) - mean^2 over the num_groups
    BatchNorm groups summed in `sums`. A frozen variant keeps its own; one whose estimate
    is not finite is frozen at `step`."""
    flat = traverse_util.flatten_dict(sums)
    stats = {}
    for path, s in flat.items():
        mean = flat[path[:-1] + ("mean",)] / num_groups
        stats[path] = mean if path[-1] == "mean" else jnp.maximum(s / num_groups - mean ** 2, 0.0)
    stats = traverse_util.unflatten_dict(stats)
    return adopt_or_freeze(state, tree_all_finite(stats), step, batch_stats=stats)


def adopt_or_freeze(state: TrainState, ok, step, **fields) -> TrainState:
    """`state` with `fields` adopted if `ok` and the variant is healthy; a variant turning
    non-finite keeps its old fields and is marked failed at `step`."""
    keep = ok & ~state.failed
    chosen = {name: jax.tree.map(lambda a, b: jnp.where(keep, a, b), new, getattr(state, name))
              for name, new in fields.items()}
    return state.replace(failed=state.failed | ~ok,
                         failed_step=jnp.where(~ok & ~state.failed, step, state.failed_step),
                         **chosen)


def tree_all_finite(tree) -> jax.Array:
    """True iff every floating leaf of `tree` is finite."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
              if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def _in_compute_dtype(state: TrainState, params, cfg: StepConfig) -> dict:
    """The model's variables with `params` cast to the compute dtype. Mixed precision:
    parameters, optimiser state and BatchNorm statistics stay float32, and the cast's
    gradient is float32 again, so only the layer arithmetic is in bfloat16."""
    variables = variables_of(state)
    variables["params"] = jax.tree.map(
        lambda p: p.astype(cfg.compute_dtype) if jnp.issubdtype(p.dtype, jnp.floating) else p,
        params)
    return variables


def _constrained(x, cfg: StepConfig):
    """x split over the mesh's "data" axis when a step spans several devices."""
    return x if cfg.batch_spec is None else jax.lax.with_sharding_constraint(x, cfg.batch_spec)


def _apply_train(cfg: StepConfig, variables, x):
    """Training-mode logits and the batch_stats each BatchNorm group leaves, stacked on a
    leading group axis (one group when bn_group_size is 0).

    Groups are vmapped with the variables shared. Groups of G divide each device's share
    of the batch, so none straddles devices.
    """
    def apply(xs):
        logits, updated = cfg.model.apply(variables, xs, train=True, mutable=["batch_stats"])
        return logits, updated["batch_stats"]

    g = cfg.bn_group_size
    if not g or g == x.shape[0]:  # one group of the whole batch: plain BatchNorm, bit for bit
        logits, stats = apply(x)
        return logits, jax.tree.map(lambda s: s[None], stats)
    groups = _constrained(x.reshape((x.shape[0] // g, g) + x.shape[1:]), cfg)
    logits, stats = jax.vmap(apply)(groups)
    return logits.reshape((x.shape[0],) + logits.shape[2:]), stats
