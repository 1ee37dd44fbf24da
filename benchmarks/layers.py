"""Forward+backward time of one graph layer: mask path, block path and a plain dense layer.

    JAX_PLATFORMS=cpu .venv/bin/python -m benchmarks.layers            # n=64, width 512, batch 128
    JAX_PLATFORMS=cpu .venv/bin/python -m benchmarks.layers --kind=conv --width=256 --batch=8 --spatial=8

For each density, a WS-flex graph (n nodes, k = density * n - 1, p = 0.25) sets the
mask; one jitted step computes the loss sum(y * r) and its gradients with respect to the
weights and the input. The three layers run interleaved; each time is the best of --repeats
rounds of --steps calls (the least disturbed by other work on a shared machine). Prints
a markdown table with the versions and the date.
"""
from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time

import flax
import jax
import jax.numpy as jnp
import numpy as np

from relgraph_jax import ops, relational
from relgraph_jax.graphs import RelationalGraph


def graph_at(density: float, n: int) -> RelationalGraph:
    k = max(2.0, round(density * n - 1.0, 3))
    return RelationalGraph.from_spec(f"ws:n={n},k={k},p=0.25,seed=0")


def layer_fns(kind: str, graph: RelationalGraph, width: int):
    """{name: (weights, fn(weights, x))} for the mask path, the block path and a dense layer."""
    structure = relational.block_structure(graph, width, width)
    mask = jnp.asarray(structure.mask)
    window = () if kind == "dense" else (3, 3)
    kernel = ops.init_graph_kernel(jax.random.key(0), window, structure.mask, None)
    blocks = ops.dense_to_blocks(kernel, structure)
    if kind == "dense":
        return structure, {
            "mask": (kernel, lambda w, x: ops.masked_matmul(x, w, mask)),
            "blocks": (blocks, lambda w, x: ops.block_matmul(x, w, structure)),
            "dense": (kernel, lambda w, x: x @ w),
        }
    return structure, {
        "mask": (kernel, lambda w, x: ops.masked_conv(x, w, mask)),
        "blocks": (blocks, lambda w, x: ops.block_conv(x, w, structure)),
        "dense": (kernel, lambda w, x: ops.conv2d(x, w)),
    }


def train_step(fn):
    """Jitted forward + backward: gradients of sum(y * r) with respect to weights and input."""
    return jax.jit(jax.grad(lambda w, x, r: jnp.sum(fn(w, x) * r), argnums=(0, 1)))


def time_calls(step, args, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        out = step(*args)
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / steps


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=["dense", "conv"], default="dense")
    parser.add_argument("--nodes", type=int, default=64)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--spatial", type=int, default=16, help="H = W of conv inputs")
    parser.add_argument("--densities", default="0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)

    shape = (args.batch, args.width) if args.kind == "dense" else (
        args.batch, args.spatial, args.spatial, args.width)
    x = jax.random.normal(jax.random.key(1), shape)
    r = jax.random.normal(jax.random.key(2), shape)
    print(f"# {args.kind} layer, n={args.nodes}, width {args.width} -> {args.width}, input {shape}")
    print(f"# {datetime.date.today()}, {platform.processor() or platform.machine()}, "
          f"{jax.devices()[0].device_kind}, python {platform.python_version()}, jax {jax.__version__}, "
          f"flax {flax.__version__}, numpy {np.__version__}")
    print("# command: python -m benchmarks.layers " + " ".join(sys.argv[1:] if argv is None else argv))
    print("| target density | graph | mask density | blocks | mask ms | blocks ms | dense ms | blocks / dense |")
    print("|---|---|---|---|---|---|---|---|")
    for density in (float(d) for d in args.densities.split(",")):
        graph = graph_at(density, args.nodes)
        structure, fns = layer_fns(args.kind, graph, args.width)
        steps = {name: (train_step(fn), (w, x, r)) for name, (w, fn) in fns.items()}
        for step, step_args in steps.values():  # compile and warm up
            jax.block_until_ready(step(*step_args))
        times = {name: [] for name in steps}
        for _ in range(args.repeats):
            for name, (step, step_args) in steps.items():
                times[name].append(time_calls(step, step_args, args.steps))
        ms = {name: 1e3 * min(t) for name, t in times.items()}
        print(f"| {density:.1f} | {graph.spec} | {structure.density:.3f} | {structure.num_blocks} | "
              f"{ms['mask']:.2f} | {ms['blocks']:.2f} | {ms['dense']:.2f} | {ms['blocks'] / ms['dense']:.2f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
