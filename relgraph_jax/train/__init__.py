"""The device-parallel trainer: many graph variants, one compiled program.

Entry point: `relgraph_jax.train.trainer.train_and_evaluate(config, workdir)`.
"""
