r"""Lists every variant of an experiment config as JSON lines, without data or compiling.

  python -m experiments.describe --config=experiments/configs/resnet34_imagenet.py
  python -m experiments.describe --config=experiments/configs/mlp_cifar10.py \
      --config.graphs='paper:n64_52;complete:n=64' --config.seeds=1

One line per variant (graphs x hyper-parameter grid x seeds, numbered as the trainer
numbers them) with the graph spec, C, L, seed, budget-matched stage widths, MACs and
parameters, the complete graph's MACs and parameters, the FLOPs matching counts and their
target (the complete graph's), and for the CNNs and ResNets their `stem` ("imagenet" or
"cifar"). Beside them, what the original
code (graph2nn) logged for the same run: `graph2nn_width` (its width list's first entry:
the MLP's hidden width, stage 1 of the CNN and ResNets, ResNet-50's stage-1 output,
EfficientNet's stage 1) and `gflops` (its FLOP count / 1e9, rounded to 3 decimals as it
rounds). Widths come from relgraph_jax.budget (counted from the layer list); no model is
initialised.
"""
from __future__ import annotations

import json
import math
import os
import sys

from absl import app, flags

from experiments import cli

def describe(config) -> list[dict]:
    """One record per variant of `config` (see the module docstring for the fields)."""
    from relgraph_jax import budget, models
    from relgraph_jax.train import variants as variants_lib
    from relgraph_jax.train.validate import validate_config

    config = validate_config(config)
    grid_names, _ = variants_lib.grid_combinations(config)
    shape = tuple(config.input_shape)
    model = models.settings(config.model)  # every field, the family's defaults filled in
    records = []
    for v in variants_lib.build_variants(config):
        cost = budget.count(config.model, v.graph, v.widths, shape)
        record = v.record_fields(config.model.name, grid_names)
        record.update(nodes=v.graph.n, density=float(v.graph.density),
                      graph2nn_width=cost.width, gflops=cost.gflops, flops=cost.flops,
                      target_flops=cost.target_flops,
                      complete_macs=cost.complete_macs, complete_params=cost.complete_params)
        if "stem" in model:
            record["stem"] = model.stem
        if hasattr(v.graph, "block"):
            record["block_graphs"] = _block_graphs(config.model, v, shape)
        records.append({k: _finite(x) for k, x in record.items()})
    return records


def _block_graphs(model_cfg, variant, shape) -> list[dict]:
    """A per-block variant's graph of each block index its graph layers use."""
    from relgraph_jax import models, relational
    blocks = sorted({layer.block for layer in models.layer_list(model_cfg, variant.graph,
                                                                 variant.widths, shape)
                     if layer.kind == "graph" and layer.block is not None})
    graphs = [relational.block_graph(variant.graph, i) for i in blocks]
    return [{"block": i, "graph": g.spec, "C": _finite(g.C), "L": _finite(g.L)}
            for i, g in zip(blocks, graphs)]


def print_variants(config, out=None) -> None:
    """Prints describe(config) as one JSON object per line."""
    out = out or sys.stdout
    for record in describe(config):
        print(json.dumps(record), file=out)


def _finite(x):
    """None for NaN/inf (e.g. L of a disconnected graph), which JSON cannot hold."""
    return None if isinstance(x, float) and not math.isfinite(x) else x


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        print_variants(flags.FLAGS.config)
    except BrokenPipeError:  # the reader stopped early (`| head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


if __name__ == "__main__":
    # Defined here, not at import, so experiments.main (which has its own --config) can
    # import print_variants for --dry_run.
    cli.define_config_flag()
    flags.mark_flags_as_required(["config"])
    cli.run(main)
