"""Quick start, offline: the paper's 52 graphs + the complete graph, MLP, bundled digits.

Runs on a laptop CPU in a few minutes with no download (scikit-learn's 8x8 digits):

  ./run.sh                                   # this config, workdir workdirs/quickstart
  python -m experiments.main --config=experiments/configs/quickstart.py --workdir=DIR
  python -m experiments.main --config=experiments/configs/quickstart.py --dry_run
  python -m experiments.analyze --workdir=DIR

The MLP is the paper's 5-layer MLP scaled to the tiny inputs: 64 -> 128 stem, three
graph layers budget-matched to a 128-wide complete graph, 10-way head. Digits are not
augmented (crops and flips change what a digit means).
"""
import ml_collections

from relgraph_jax import models


def get_config():
    config = ml_collections.ConfigDict()
    config.model = models.default_config("mlp")
    config.model.stem_width = 128
    config.model.width = 128
    config.graphs = "paper:n64_52;complete:n=64"
    config.seeds = 1
    config.budget_match = True
    config.input_shape = (8, 8, 1)
    config.data = ml_collections.ConfigDict(dict(source="digits", name="digits", augment=False))
    config.train = ml_collections.ConfigDict(dict(
        batch_size=64, epochs=6, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4,
        eval_every=1, eval_batch_size=360, steps_per_call=22, log_every_steps=22,
        compute_dtype="float32", checkpoint_every_steps=0, variant_batch=1))
    config.mesh = ml_collections.ConfigDict(dict(data=1, devices=0))
    config.grid = ml_collections.ConfigDict(dict(lr=(), weight_decay=()))
    return config
