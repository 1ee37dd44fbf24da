"""One training step of the `vit` family at the complete graph against the same step of the
plain dense ViT (`model.graph_layers="none"`: nn.Dense everywhere), and at a sparse graph's
matched widths.

    JAX_PLATFORMS=cpu .venv/bin/python -m benchmarks.vit_step                  # the CPU study's ViT
    JAX_PLATFORMS=cpu .venv/bin/python -m benchmarks.vit_step --preset=deit_tiny --steps=3

A step is the trainer's own (`train.step.train_step`: forward, backward, AdamW with the
Transformer recipe, the finite checks), jitted for one variant. The models run
interleaved; each time is the best of --repeats rounds of --steps calls. The goal for the
complete graph on the mask path: at most 1.1x the dense ViT's time. Prints a markdown table.
"""
from __future__ import annotations

import argparse
import datetime
import platform

import jax
import jax.numpy as jnp

from benchmarks.layers import time_calls
from experiments.configs import common
from relgraph_jax import budget, models
from relgraph_jax.train import losses, optim, state as state_lib, step as step_lib

PRESETS = {
    # docs/results/vit_cifar10_cpu's model, and vit_cifar10.py's (DeiT-tiny-like).
    "cpu_study": dict(width=64, depth=4, heads=4, patch=8),
    "deit_tiny": dict(width=192, depth=12, heads=3, patch=4),
}
SHAPE = (32, 32, 3)


def step_fn(model_cfg, graph, widths, train_cfg, batch: int):
    """(jitted step, its arguments) for one variant of `model_cfg` at `widths`."""
    model = models.build(model_cfg, graph, width=widths)
    images = jax.random.normal(jax.random.key(1), (batch,) + SHAPE)
    labels = jax.random.randint(jax.random.key(2), (batch,), 0, 10)
    variables = state_lib.collections_of(model.init(jax.random.key(0), images[:1], train=False))
    tx = optim.make_optimizer(train_cfg, steps_per_epoch=390)
    state = state_lib.TrainState.fresh(variables, tx.init(variables["params"]))
    cfg = step_lib.StepConfig(model=model, tx=tx, loss=losses.LOSSES[train_cfg.loss].make(train_cfg),
                              steps_per_epoch=390)
    step = jax.jit(lambda s, x, y, i: step_lib.train_step(s, x, y, i, cfg))
    return step, (state, images, labels, jnp.int32(1))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=list(PRESETS), default="cpu_study")
    parser.add_argument("--graph", default="paper:n16_48/21", help="the sparse graph (16 nodes)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    config = common.experiment("vit", graphs="complete:n=16", seeds=1, input_shape=SHAPE,
                               data=common.digits_data(), train_cfg=common.transformer_recipe(
                                   batch_size=args.batch, epochs=4, lr=1e-3,
                                   eval_batch_size=args.batch, warmup_steps=390))
    config.model.update(PRESETS[args.preset])
    dense_cfg = config.model.copy_and_resolve_references()
    dense_cfg.graph_layers = "none"
    matched = budget.match(config.model, args.graph, SHAPE).widths
    rows = {
        "dense ViT (nn.Dense)": step_fn(dense_cfg, "complete:n=16", None, config.train, args.batch),
        "vit, complete graph (mask)": step_fn(config.model, "complete:n=16", None, config.train,
                                              args.batch),
        f"vit, {args.graph} at {matched} (mask)": step_fn(config.model, args.graph, matched,
                                                          config.train, args.batch),
    }
    for step, step_args in rows.values():
        jax.block_until_ready(step(*step_args))  # compile
    best = {name: float("inf") for name in rows}
    for _ in range(args.repeats):
        for name, (step, step_args) in rows.items():
            best[name] = min(best[name], time_calls(step, step_args, args.steps))
    dense = best["dense ViT (nn.Dense)"]
    print(f"vit_step, preset {args.preset} ({PRESETS[args.preset]}), batch {args.batch}, "
          f"{platform.processor() or platform.machine()}, jax {jax.__version__}, "
          f"{jax.devices()[0].device_kind}, {datetime.date.today()}")
    print("| model | ms / step | vs dense |\n|---|---|---|")
    for name, seconds in best.items():
        print(f"| {name} | {1000 * seconds:.1f} | {seconds / dense:.3f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
