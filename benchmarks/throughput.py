"""Throughput of the variant-parallel training step against a one-variant-at-a-time loop.

  python benchmarks/throughput.py [--config=experiments/configs/mlp_cifar10.py]
      [--graphs=paper:n64_52] [--scaling=1,8,52,260] [--steps=3] [--json]
      [--set train.width_buckets=8 --set model.impl=gather --set train.compute_dtype=bfloat16]

Without --scaling, the counts 1, 8, 52 and 260 run, less those whose memory, estimated as
the trainer estimates it (relgraph_jax/train/memory.py), exceeds this machine's (each is
named on stderr with the figures; on a 24 GiB host 260 is left out); a --scaling count
that does not fit is refused with them.
For each variant count V (the first V of graphs x seeds; 260 = 52 graphs x 5 seeds) it
builds the trainer's own state and compiled step (synthetic uint8 data of the config's
shapes, on-device crop/flip included) and reports: model-samples/s; useful TFLOP/s
(6 x budget MACs per model-sample: forward + backward); executed TFLOP/s (6 x the MACs
every slot really computes at its bucket's padded width: whole masked kernels on the mask
path, every kernel slot on the gather path); compile time; peak device memory per variant
(XLA's memory analysis of the compiled steps).
The one-at-a-time loop trains a sample of the variants alone at their own widths, the
way the original code runs one graph at a time, and extrapolates to V. A dense f32 matmul
is timed in the same run; `useful_to_matmul` (with --json) is the useful FLOP/s of the
52-variant step over that matmul's FLOP/s.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import importlib.util
import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from relgraph_jax import data as data_lib, graphs, models, relational
from relgraph_jax.data.summary import DataSummary
from relgraph_jax.train import trainer, validate, variants as variants_lib

FLOPS_PER_MAC_TRAIN = 6  # forward 2 + backward 4 flops per multiply-accumulate
DEFAULT_SCALING = (1, 8, 52, 260)  # the counts that fit this machine's memory are run


def _parse_override(text: str) -> tuple[str, str, object]:
    """"section.field=value" -> (section, field, value); value as a Python literal or text."""
    key, sep, raw = text.partition("=")
    section, dot, name = key.partition(".")
    if not (sep and dot and section in ("model", "train")):
        raise ValueError(f"--set {text!r}: expected model.FIELD=VALUE or train.FIELD=VALUE")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return section, name, value


def _load_config(path: str, graphs: str, seeds: int, overrides):
    spec = importlib.util.spec_from_file_location("bench_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    config.graphs, config.seeds = graphs, seeds
    config.mesh.devices = 0
    for section, name, value in overrides:
        if name not in config[section]:
            raise ValueError(f"--set {section}.{name}: unknown field; allowed: "
                             f"{sorted(config[section].keys())}")
        config[section][name] = value
    return validate.validate_config(config)  # completed: defaults, input_shape derived


def _synthetic(config, num_train: int) -> data_lib.Dataset:
    shape = tuple(config.input_shape)
    rng = np.random.default_rng(0)
    n_cls = config.model.num_classes
    return data_lib.Dataset(
        x_train=rng.integers(0, 256, (num_train,) + shape, dtype=np.uint8),
        y_train=(np.arange(num_train) % n_cls).astype(np.int32),
        x_test=rng.integers(0, 256, (n_cls,) + shape, dtype=np.uint8),
        y_test=np.arange(n_cls, dtype=np.int32), num_classes=n_cls,
        mean=np.full(shape[-1], 127.0, np.float32), std=np.full(shape[-1], 64.0, np.float32),
        name="synthetic")


def time_step(config, variant_list, steps: int) -> dict:
    """Compile time, steady-state seconds per `steps` steps of every bucket, and memory."""
    train_cfg = config.train
    ds = _synthetic(config, train_cfg.batch_size * steps)
    spec = data_lib.DataSpec(source="arrays", name="synthetic", path=None,
                             augment=bool(config.data.augment), crop_pad=4, flip=True,
                             image_size=None, tfds_data_dir=None, train_split="train",
                             test_split="test")
    t0 = time.perf_counter()
    run = trainer.build_sweep(config, variant_list, ds, True, spec, steps)
    build_s = time.perf_counter() - t0
    inputs = run.feed.epoch_inputs(0)
    compile_s, peak, calls = 0.0, 0.0, []
    for b in run.buckets:
        args = (b.state, b.seed_index, *inputs, jnp.int32(0), jnp.int32(steps))
        t0 = time.perf_counter()
        compiled = b.programs.train_resident.lower(*args).compile()
        compile_s += time.perf_counter() - t0
        mem = compiled.memory_analysis()
        peak += (mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes
                 if mem is not None else float("nan"))
        calls.append((b, compiled, args[1:]))

    def run_all():
        for b, compiled, rest in calls:
            b.state = compiled(b.state, *rest)
        jax.block_until_ready([b.state for b in run.buckets])

    run_all()
    best = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        run_all()
        best = min(best, time.perf_counter() - t0)
    return {"build_s": build_s, "compile_s": compile_s, "seconds": best,
            "buckets": [(b.slots, b.widths, max(relational.max_in_degree(v.graph) for v in b.variants))
                        for b in run.buckets], "peak_bytes": peak}


def executed_macs(config, width, degree_slots: int) -> int:
    """MACs per sample that one slot of a bucket really computes: every dense layer in full,
    a graph layer as its whole dense kernel (mask path) or every kernel slot (gather)."""
    nodes, impl = config.model.nodes, config.model.impl
    total = 0
    for layer in models.layer_list(config.model, f"complete:n={nodes}", width,
                                   tuple(config.input_shape)):
        if layer.kind in ("norm", "embedding"):
            continue
        if layer.kind == "depthwise":
            per_position = layer.cout
        elif layer.kind == "graph" and impl == "gather":
            per_position = nodes * degree_slots * -(-layer.cin // nodes) * -(-layer.cout // nodes)
        else:
            per_position = layer.cin * layer.cout
        total += per_position * layer.window * layer.positions
    return total


def memory_problem(config, variant_list, steps: int) -> str | None:
    """Why `variant_list` would not fit in memory (the trainer's own estimate and check,
    for the synthetic data of `time_step`), or None."""
    shape = tuple(config.input_shape)
    n_cls = config.model.num_classes
    synthetic = DataSummary("synthetic", shape, config.train.batch_size * steps, n_cls, {}, n_cls)
    try:
        validate.check_memory(config, variant_list, synthetic)
    except ValueError as error:
        return str(error)
    return None


def figures(config, variant_list, steps: int) -> dict:
    t = time_step(config, variant_list, steps)
    per_step = config.train.batch_size * steps
    samples = len(variant_list) * per_step
    useful = FLOPS_PER_MAC_TRAIN * sum(v.macs for v in variant_list) * per_step
    executed = FLOPS_PER_MAC_TRAIN * per_step * sum(
        slots * executed_macs(config, width, degree) for slots, width, degree in t["buckets"])
    return {"variants": len(variant_list), "buckets": t["buckets"],
            "slots": sum(b[0] for b in t["buckets"]), "widest": max(b[1] for b in t["buckets"]),
            "model_samples_per_s": samples / t["seconds"],
            "useful_tflops": useful / t["seconds"] / 1e12,
            "executed_tflops": executed / t["seconds"] / 1e12,
            "compile_s": t["compile_s"], "build_s": t["build_s"],
            "peak_mib_per_variant": t["peak_bytes"] / 2**20 / len(variant_list)}


def one_at_a_time(config, variant_list, steps: int, sample: int) -> dict:
    """The same step for one variant at a time (own width, one device), extrapolated."""
    config = config.copy_and_resolve_references()
    config.mesh.devices = 1
    config.train.variant_batch = 1
    picked = variant_list[:: max(1, len(variant_list) // sample)][:sample]
    seconds = [time_step(config, [v], steps)["seconds"] for v in picked]
    per_variant = float(np.mean(seconds))
    total = per_variant * len(variant_list)
    samples = len(variant_list) * config.train.batch_size * steps
    useful = FLOPS_PER_MAC_TRAIN * sum(v.macs for v in variant_list) * config.train.batch_size * steps
    return {"variants": len(variant_list), "timed": len(picked),
            "model_samples_per_s": samples / total, "useful_tflops": useful / total / 1e12}


def matmul_flops(n: int = 2048, repeats: int = 10) -> float:
    """Best FLOP/s of an f32 (n x n) @ (n x n) matmul on the default device."""
    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="experiments/configs/mlp_cifar10.py")
    parser.add_argument("--graphs", default="paper:n64_52")
    parser.add_argument("--scaling", default=None, help="variant counts (default: those of "
                        f"{','.join(map(str, DEFAULT_SCALING))} that fit in memory)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--loop-sample", type=int, default=4)
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="config override, e.g. train.compute_dtype=bfloat16, "
                             "model.impl=gather, train.width_buckets=8 (repeatable)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    counts = [int(c) for c in args.scaling.split(",")] if args.scaling else list(DEFAULT_SCALING)
    if min(counts) < 1 or args.steps < 1:
        parser.error(f"--scaling={args.scaling} and --steps={args.steps} must be positive")
    max_seeds = -(-max(counts) // len(graphs.resolve(args.graphs)))
    try:
        config = _load_config(args.config, args.graphs, max_seeds,
                              [_parse_override(text) for text in args.set])
    except ValueError as error:
        parser.error(str(error))
    all_variants = variants_lib.build_variants(config)
    # graphs x seeds is ordered graph-major; take seeds round-robin so V graphs come first.
    order = sorted(all_variants, key=lambda v: (v.seed, v.id))
    too_big = {c: memory_problem(config, order[:c], args.steps) for c in counts}
    too_big = {c: why for c, why in too_big.items() if why}
    if too_big and args.scaling:
        parser.error(f"--scaling {min(too_big)} variants: {too_big[min(too_big)]}")
    for c, why in too_big.items():
        print(f"left out {c} variants: {why}", file=sys.stderr)
    counts = [c for c in counts if c not in too_big]
    if not counts:
        parser.error("no variant count of the default scaling fits in memory")
    # With --json, stdout carries only the JSON object: the trainer's log goes to stderr.
    with contextlib.redirect_stdout(sys.stderr if args.json else sys.stdout):
        before = matmul_flops()
        rows = [figures(config, order[:c], args.steps) for c in counts]
        # The machine's speed drifts (shared cores, clocks): the reference is the best of
        # two measurements around the steps, which can only lower the reported ratio.
        dense = max(before, matmul_flops())
        n52 = next((r for r in rows if r["variants"] == 52), rows[-1])
        loop = one_at_a_time(config, order[:n52["variants"]], args.steps, args.loop_sample)
    result = {"device": jax.devices()[0].device_kind, "devices": jax.device_count(),
              "jax": jax.__version__, "config": args.config, "graphs": args.graphs,
              "batch_size": config.train.batch_size, "steps": args.steps,
              "dense_matmul_tflops": dense / 1e12, "scaling": rows, "one_at_a_time": loop,
              "useful_to_matmul": n52["useful_tflops"] * 1e12 / dense}
    if args.json:
        print(json.dumps(result))
        return
    print(f"device {result['device']} x{result['devices']}, jax {result['jax']}, batch "
          f"{result['batch_size']}, dense f32 matmul {dense / 1e12:.3f} TFLOP/s")
    print("| variants | slots | widest | model-samples/s | useful TFLOP/s | executed TFLOP/s "
          "| compile s | MiB/variant |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variants']} | {r['slots']} | {r['widest']} | {r['model_samples_per_s']:,.0f} "
              f"| {r['useful_tflops']:.4f} | {r['executed_tflops']:.4f} | {r['compile_s']:.1f} "
              f"| {r['peak_mib_per_variant']:.1f} |")
    print(f"one at a time ({loop['variants']} variants, {loop['timed']} timed): "
          f"{loop['model_samples_per_s']:,.0f} model-samples/s, {loop['useful_tflops']:.4f} useful TFLOP/s")
    print(f"useful_to_matmul (V={n52['variants']}): {result['useful_to_matmul']:.3f}")


if __name__ == "__main__":
    main()
