"""Train every graph variant of a config in parallel and record results.

  python -m experiments.main --config=experiments/configs/mlp_cifar10.py --workdir=runs/mlp
  python -m experiments.main --config=experiments/configs/quickstart.py --workdir=DIR \
      --config.train.epochs=3 --config.graphs='paper:n64_52;complete:n=64'
  ... --dry_run          list the variants (graph, C, L, widths, MACs) and exit

Rerunning the same command on an existing workdir resumes it. Several hosts: start the
same command on each with --coordinator=HOST:PORT --num_processes=N --process_id=I.
"""
from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for results and checkpoints.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Describe the variants and exit.")
_COORDINATOR = flags.DEFINE_string("coordinator", None, "jax.distributed coordinator HOST:PORT.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 1, "Processes in a multi-host run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", 0, "This process's index in a multi-host run.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # keep Orbax's per-save INFO lines off the terminal
    config = _CONFIG.value
    if _DRY_RUN.value:
        from experiments import describe
        describe.print_variants(config)
        return
    if not _WORKDIR.value:
        raise app.UsageError("--workdir is required (where results and checkpoints go)")
    if _NUM_PROCESSES.value > 1:
        import jax
        jax.distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    from relgraph_jax.train.trainer import train_and_evaluate
    train_and_evaluate(config, _WORKDIR.value)


if __name__ == "__main__":
    flags.mark_flags_as_required(["config"])
    app.run(main)
