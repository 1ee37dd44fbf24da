"""Turn a workdir's results.jsonl into the paper's figures and tables (REPORT.md).

  python -m experiments.analyze --workdir=runs/mlp
  python -m experiments.analyze --workdir=runs/mlp --out=docs/results/mlp --epoch=3
  python -m experiments.analyze --workdir=runs/mlp --compare=runs/resnet34
  python -m experiments.analyze --workdir=runs/grid --hparams=lr=0.1,weight_decay=0.0005
  python -m experiments.analyze --workdir=runs/mlp --reference=runs/graph2nn_mlp
  python -m experiments.analyze --workdir=runs/graph2nn/mlp_cifar10 --paper_choices

Works on a sweep that is still running: whatever is missing is named in the report.

--reference=REFDIR adds a section comparing this run with another workdir (e.g. the
authors' recorded runs imported into results.jsonl) on the graphs both hold, matched by
what they are, not by spec: correlation of the per-graph mean errors, mean offset, a
scatter plot, best graph and sweet spot of each. REFDIR is read at its last epochs, or at
--reference_epoch. A REFDIR without results.jsonl, or sharing no graph, is refused before
anything is written.
"""
import json
import os
import shlex
import sys

from absl import app, flags

from experiments import cli
from relgraph_jax.results import RESULTS_FILE

_WORKDIR = flags.DEFINE_string("workdir", None, "Workdir holding results.jsonl.")
_OUT = flags.DEFINE_string("out", None, "Folder for REPORT.md and figures (default "
                           "WORKDIR/report).")
_COMPARE = flags.DEFINE_string("compare", None, "Another workdir whose heatmap to correlate "
                               "with (another architecture or graph set).")
_EPOCH = flags.DEFINE_integer("epoch", None, "Analyse this epoch instead of each variant's last.",
                              lower_bound=0)
_REFERENCE = flags.DEFINE_string("reference", None, "A workdir to compare with graph by graph "
                                 "(e.g. the authors' recorded runs).")
_REFERENCE_EPOCH = flags.DEFINE_integer("reference_epoch", None, "Read --reference at this "
                                        "epoch instead of each variant's last.", lower_bound=0)
_HPARAMS = flags.DEFINE_string("hparams", None, "In a hyper-parameter grid, the values to "
                               "analyse, e.g. lr=0.1,weight_decay=0.0005.")
_PAPER_CHOICES = flags.DEFINE_bool("paper_choices", False, "Use the paper's choices: population "
                                   "std, the paper's best graph, its grids (right-closed C; "
                                   "12x12 for 16 nodes). See relgraph_jax.analysis.paper.")


def _has_results(workdir) -> bool:
    # Checked before the analysis stack (matplotlib, scipy) is imported: a typo fails fast.
    return workdir is None or os.path.isfile(os.path.join(workdir, RESULTS_FILE))


for _flag in ("workdir", "compare", "reference"):
    flags.register_validator(_flag, _has_results,
                             message=f"--{_flag} must be a workdir holding {RESULTS_FILE}")


def parse_hparams(text: str | None) -> dict | None:
    """'lr=0.1,weight_decay=5e-4' -> {'lr': 0.1, 'weight_decay': 0.0005} (JSON values, else text)."""
    if not text:
        return None
    chosen = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"--hparams item {item!r} is not NAME=VALUE (as in "
                             "lr=0.1,weight_decay=0.0005)")
        try:
            chosen[name.strip()] = json.loads(value)
        except ValueError:
            chosen[name.strip()] = value.strip()
    return chosen


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    hparams = parse_hparams(_HPARAMS.value)
    if _REFERENCE_EPOCH.value is not None and _REFERENCE.value is None:
        raise ValueError("--reference_epoch needs --reference")
    from relgraph_jax import extensions
    for workdir in (_WORKDIR.value, _COMPARE.value, _REFERENCE.value):
        notice = workdir and extensions.load_recorded(workdir)  # its config.imports
        if notice:
            print(f"experiments.analyze: {notice}", file=sys.stderr)
    from relgraph_jax.analysis import write_report
    command = "python -m experiments.analyze " + shlex.join(sys.argv[1:])
    path = write_report(_WORKDIR.value, out=_OUT.value, compare=_COMPARE.value,
                        epoch=_EPOCH.value, hparams=hparams, command=command,
                        reference=_REFERENCE.value, reference_epoch=_REFERENCE_EPOCH.value,
                        paper_choices=_PAPER_CHOICES.value)
    print(f"wrote {path}")


if __name__ == "__main__":
    flags.mark_flags_as_required(["workdir"])
    cli.run(main)
