"""Train every graph variant of a config in parallel and record results.

  python -m experiments.main --config=experiments/configs/mlp_cifar10.py --workdir=runs/mlp
  python -m experiments.main --config=experiments/configs/quickstart.py --workdir=DIR \
      --config.train.epochs=3 --config.graphs='paper:n64_52;complete:n=64'
  ... --dry_run          list the variants (graph, C, L, widths, MACs) and exit

Rerunning the same command on an existing workdir resumes it. Several hosts: start the
same command on each with --coordinator=HOST:PORT --num_processes=N --process_id=I, or
with --coordinator=auto where jax finds them itself (Cloud TPU VM slices, Slurm, Open
MPI; docs/data.md has the command for every host of a TPU VM).
A bad config or command line is refused with one line on stderr and exit status 2
(--verbose adds the traceback), before anything is written.

Exit status: 0 finished; 2 refused (bad input, or a workdir that cannot be used as it
is: another run has it, other data, a damaged checkpoint or results file; one line says
what to do); 1 an I/O error while running (a failed write such as a full disk, an
unreadable file; rerun to resume once fixed); 143 stopped by SIGTERM and 130 by Ctrl-C
(SIGINT), each after saving a checkpoint (rerun to resume).
"""
import signal
import sys

from absl import flags, logging

from experiments import cli, hosts

FAILED = 1  # an I/O error while running (a full disk, an unreadable file); it can resume
STOPPED = 128  # + the signal: SIGTERM (143) or SIGINT (130) stopped it after a checkpoint

_CONFIG = cli.define_config_flag()
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for results and checkpoints.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Describe the variants and exit.")
_ADOPT_DATA = flags.DEFINE_bool(
    "adopt_data", False, "Resume a workdir that has checkpoints or records but no data.json "
    "(made before data fingerprints existed), recording the current data's fingerprint: "
    "only if its data is unchanged.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator", None, "jax.distributed coordinator HOST:PORT, or 'auto': detected with the "
    "process count and index (Cloud TPU VMs, Slurm, Open MPI).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 1, "Processes in a multi-host run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", 0, "This process's index in a multi-host run.")
_COORDINATOR_TIMEOUT = flags.DEFINE_integer(
    "coordinator_timeout", 300, "Seconds the processes of a multi-host run wait to meet at "
    "the coordinator before giving up with a message.")


def main(argv):
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # keep Orbax's per-save INFO lines off the terminal
    config = _CONFIG.value
    if _DRY_RUN.value:
        from experiments import describe
        describe.print_variants(config)
        return
    if not _WORKDIR.value:
        raise ValueError(f"--workdir={_WORKDIR.value!r}: give the folder where results and "
                         "checkpoints go")
    hosts.initialize(hosts.check(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                                 _COORDINATOR_TIMEOUT.value))
    from relgraph_jax.train.trainer import train_and_evaluate
    try:
        summary = train_and_evaluate(config, _WORKDIR.value, adopt_data=_ADOPT_DATA.value)
    except ValueError:  # bad input, also data not found (an OSError too): cli.run's exit 2
        raise
    except OSError as error:  # I/O failed (a full disk, a file unreadable): one line
        if flags.FLAGS.verbose:
            raise
        print(f"experiments.main: {error}", file=sys.stderr)
        sys.exit(FAILED)
    except KeyboardInterrupt:  # Ctrl-C twice, or during start-up: no checkpoint
        print("experiments.main: interrupted; rerun the same command to resume from the last "
              "checkpoint", file=sys.stderr)
        sys.exit(STOPPED + signal.SIGINT)
    if summary["stopped_by_signal"] and not summary["finished"]:
        sys.exit(STOPPED + summary["stopped_by_signal"])  # checkpoint saved: 143 or 130


if __name__ == "__main__":
    flags.mark_flags_as_required(["config"])
    cli.run(main)
