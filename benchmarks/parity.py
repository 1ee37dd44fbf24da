"""Accuracy parity of the fast paths against the f32 mask-path reference.

  python benchmarks/parity.py [--steps=300] [--window=25] [--data=data_cache/cifar10_jpeg.npz]
      [--graphs='paper:n64_52/9;paper:n64_52/40;paper:n64_52/20;complete:n=64']

Trains the same variants (MLP recipe, CIFAR-10: the official release, or with
--data=NPZ an arrays file such as the decoded JPEG copy; seed 0) several ways and compares their training-loss curves, averaged over windows of
`window` steps:
- reference: every variant alone at its own width, mask path, float32, one at a time;
- padded: all variants in one program padded to the widest, vmapped together;
- gather: the gather layout (only the connected blocks) instead of the dense mask;
- bfloat16: the reference layout with bfloat16 arithmetic (float32 parameters).
Prints, per path, the largest gap to the reference over all windows and variants.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import sys

import numpy as np

from relgraph_jax import data as data_lib
from relgraph_jax.train import mesh as mesh_lib, trainer, validate, variants as variants_lib

PATHS = {
    "reference": {},
    "padded": {"train.width_buckets": 1, "train.variant_batch": 0},
    "gather": {"model.impl": "gather"},
    "bfloat16": {"train.compute_dtype": "bfloat16"},
}


def _config(path: str, graphs: str, overrides: dict, data_path: str | None):
    spec = importlib.util.spec_from_file_location("parity_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    config.graphs, config.seeds = graphs, 1
    config.mesh.devices = 1
    config.train.variant_batch = 1
    config.train.width_buckets = 64  # the reference: every width its own program
    if data_path:
        config.data.source, config.data.path = "arrays", data_path
    for dotted, value in overrides.items():
        section, name = dotted.split(".")
        config[section][name] = value
    return validate.validate_config(config)  # completed: defaults, input_shape derived


def loss_curve(config, steps: int, window: int) -> np.ndarray:
    """(variants, steps // window) mean training loss of each window of steps."""
    variant_list = variants_lib.build_variants(config)
    spec = data_lib.validate(config.data)
    source = data_lib.load(spec)
    steps_per_epoch = source.num_train // config.train.batch_size
    if steps > steps_per_epoch:
        raise ValueError(f"--steps={steps}: at most one epoch ({steps_per_epoch} steps)")
    run = trainer.build_sweep(config, variant_list, source, True, spec, steps_per_epoch)
    curve = np.zeros((len(variant_list), steps // window))
    previous = np.zeros(len(variant_list))
    for w in range(steps // window):
        trainer.train_steps(run, w * window, window)
        total = np.zeros(len(variant_list))
        for b in run.buckets:
            sums = mesh_lib.fetch(b.state.loss_sum)
            total[[v.id for v in b.variants]] = sums[:len(b.variants)]
        curve[:, w] = (total - previous) / window
        previous = total
    return curve


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="experiments/configs/mlp_cifar10.py")
    parser.add_argument("--graphs",
                        default="paper:n64_52/9;paper:n64_52/40;paper:n64_52/20;complete:n=64")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--window", type=int, default=25)
    parser.add_argument("--data", default=None, help="an arrays .npz (e.g. the decoded JPEG "
                        "copy of CIFAR-10) instead of the config's data")
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    names = args.paths.split(",")
    unknown = sorted(set(names) - set(PATHS))
    if unknown or "reference" not in names or args.steps < args.window or args.window < 1:
        parser.error(f"--paths must include reference and name only {list(PATHS)} (got "
                     f"{unknown or names}); need 1 <= --window <= --steps")
    # With --json, stdout carries only the JSON object: the trainer's log goes to stderr.
    with contextlib.redirect_stdout(sys.stderr if args.json else sys.stdout):
        curves = {name: loss_curve(_config(args.config, args.graphs, PATHS[name], args.data), args.steps,
                                   args.window) for name in names}
    ref = curves["reference"]
    result = {"graphs": args.graphs, "steps": args.steps, "window": args.window,
              "reference_first_last": [float(ref[:, 0].mean()), float(ref[:, -1].mean())],
              "paths": {name: {"max_abs_gap": float(np.abs(c - ref).max()),
                               "max_rel_gap": float((np.abs(c - ref) / ref).max()),
                               "last_window_mean": float(c[:, -1].mean())}
                        for name, c in curves.items() if name != "reference"}}
    if args.json:
        print(json.dumps(result))
        return
    print(f"reference loss: first window {result['reference_first_last'][0]:.4f}, last window "
          f"{result['reference_first_last'][1]:.4f} (mean over variants)")
    print("| path | largest gap to reference (abs) | (relative) | last-window mean loss |")
    print("|---|---|---|---|")
    for name, r in result["paths"].items():
        print(f"| {name} | {r['max_abs_gap']:.4f} | {r['max_rel_gap']:.2%} | "
              f"{r['last_window_mean']:.4f} |")


if __name__ == "__main__":
    main()
