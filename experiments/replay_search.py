r"""Replay successive halving on the per-epoch records of finished full runs.

  python -m experiments.replay_search --workdir=runs/graph2nn/resnet34_imagenet --decide_seeds=1
  python -m experiments.replay_search --workdir=runs/mlp --metric=val_error --json
  python -m experiments.replay_search --decide_seeds=1 --eta=2,3,4 --first_rung=1,3,5 \
      --workdir=runs/graph2nn/{cnn6,resnet34,resnet34_sep,resnet50,efficientnet}_imagenet

Each workdir is a full run (every graph trained to the end, e.g. the authors' runs
imported by `experiments.import_graph2nn`). --eta, --first_rung and --keep_at_least take
comma lists: every combination is replayed on every workdir. The output is a markdown
table per (workdir, setting) and one per setting with the mean over the workdirs; --json
prints one JSON object per (workdir, setting) instead, with the fields of
`relgraph_jax.search.replay.replay`. The rules (deciding, judging, the equal-compute
baseline and how its epoch is rounded) are in that module's docstring and docs/search.md.
"""
from __future__ import annotations

import itertools
import json
import os
import sys

from absl import flags

from experiments import cli
from relgraph_jax.search.halving import HalvingPolicy

_DEFAULT = HalvingPolicy()
_WORKDIR = flags.DEFINE_multi_string("workdir", None, "A full run's workdir; repeat the flag "
                                     "for several (their means are tabled per setting).")
_ETA = flags.DEFINE_list("eta", [str(_DEFAULT.eta)], "Cut factor(s) per rung, integers >= 2.")
_FIRST_RUNG = flags.DEFINE_list("first_rung", [str(_DEFAULT.first_rung)],
                                "Epoch(s) of the first decision, integers >= 1.")
_KEEP = flags.DEFINE_list("keep_at_least", [str(_DEFAULT.keep_at_least)],
                          "Fewest graphs a rung keeps, integers >= 1.")
_FORCED = flags.DEFINE_string("forced", "", "Graph specs that always survive, separated by "
                              "';' (e.g. complete:n=64).")
_METRIC = flags.DEFINE_string("metric", "auto", "What decides: val_error, test_error, or auto "
                              "(val_error when every record has one, else test_error).")
_DECIDE_SEEDS = flags.DEFINE_integer("decide_seeds", 0, "How many seeds (the lowest ids) "
                                     "decide; 0 = all. Every seed judges.")
_JSON = flags.DEFINE_bool("json", False, "One JSON object per (workdir, setting) instead of "
                          "tables.")


def _integers(name: str, values: list[str]) -> list[int]:
    """A comma-list flag's integers, each once, in the order given."""
    try:
        numbers = [int(v) for v in values]
    except ValueError:
        numbers = []
    if not numbers:
        raise ValueError(f"--{name}={','.join(values)!r}: must be a comma list of integers")
    return list(dict.fromkeys(numbers))


def policies() -> list[HalvingPolicy]:
    """Every combination of the flags' values, each validated (ValueError on a bad value)."""
    forced = tuple(s.strip() for s in _FORCED.value.split(";") if s.strip())
    grid = itertools.product(_integers("eta", _ETA.value),
                             _integers("first_rung", _FIRST_RUNG.value),
                             _integers("keep_at_least", _KEEP.value))
    out = []
    for eta, first_rung, keep in grid:
        try:
            out.append(HalvingPolicy(eta, first_rung, keep, forced).validate())
        except ValueError as error:
            raise ValueError(f"--{error}") from None
    return out


def _number(value, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _setting(row: dict) -> str:
    return f"| {row['eta']} | {row['first_rung']} | {row['keep_at_least']} "


def _name(row: dict) -> str:
    return os.path.basename(os.path.normpath(row["workdir"]))


def _protocol(row: dict) -> str:
    """'deciding: METRIC of seed(s) ...; judged by ...' of one replay."""
    return (f"deciding: {row['metric']} of seed(s) {', '.join(map(str, row['decide_seeds']))}"
            f"; judged by the final mean {row['judged_by']} over seed(s) "
            f"{', '.join(map(str, row['judge_seeds']))}")


def tables(rows: list[dict]) -> str:
    """Markdown: one line per (workdir, setting), then the mean over workdirs per setting."""
    protocols = {_name(r): _protocol(r) for r in rows}
    if len(set(protocols.values())) == 1:
        lines = [f"All workdirs, {next(iter(protocols.values()))}."]
    else:
        lines = [f"{name}: {text}." for name, text in protocols.items()]
    lines += ["Regret in points; rank 1 = best.",
              "", "| workdir | eta | first rung | keep | compute | rank | regret | baseline epoch "
             "| baseline rank | baseline regret |", "|---" * 10 + "|"]
    for r in rows:
        b = r["baseline"]
        lines.append(f"| {_name(r)} " + _setting(r)
                     + f"| {100 * r['compute_fraction']:.1f} % | {r['picked_rank'] or '-'} "
                     f"| {_number(r['regret'], 3)} | {b['epoch']} | {b['picked_rank'] or '-'} "
                     f"| {_number(b['regret'], 3)} |")
    lines += ["", "| eta | first rung | keep | compute (max) | mean regret | mean baseline "
              "regret | mean full-run regret | mean random-pick regret |", "|---" * 8 + "|"]
    by_setting = {}
    for r in rows:
        by_setting.setdefault((r["eta"], r["first_rung"], r["keep_at_least"]), []).append(r)
    for group in by_setting.values():
        def mean(get):
            values = [get(r) for r in group]
            return None if None in values else sum(values) / len(values)
        lines.append(_setting(group[0])
                     + f"| {100 * max(r['compute_fraction'] for r in group):.1f} % "
                     f"| {_number(mean(lambda r: r['regret']), 3)} "
                     f"| {_number(mean(lambda r: r['baseline']['regret']), 3)} "
                     f"| {_number(mean(lambda r: r['full_run']['regret']), 3)} "
                     f"| {_number(mean(lambda r: r['random_regret']), 3)} |")
    notes = [f"{_name(r)}: {note}" for r in rows for note in r["notes"]]
    return "\n".join(lines + [""] + sorted(set(notes)))


def main(argv):
    """Bad input raises ValueError, which `cli.run` reports in one line (exit status 2)."""
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments: {argv[1:]}")
    if not _WORKDIR.value:
        raise ValueError("--workdir is required: a full run's workdir (repeat the flag for "
                         "several)")
    seen = {}
    for workdir in _WORKDIR.value:
        real = os.path.realpath(workdir)
        if real in seen:
            raise ValueError(f"--workdir={workdir} names the same folder as --workdir="
                             f"{seen[real]}: each workdir would count twice in the means; give "
                             "each once")
        seen[real] = workdir
    chosen = policies()
    from relgraph_jax.search import replay
    replay.check_metric(_METRIC.value)
    if _DECIDE_SEEDS.value < 0:
        raise ValueError(f"--decide_seeds={_DECIDE_SEEDS.value}: must be >= 0 (0 = all "
                         "seeds decide)")
    from relgraph_jax import extensions
    for workdir in _WORKDIR.value:  # its run's own graph kinds and families (config.imports)
        notice = extensions.load_recorded(workdir)
        if notice:
            print(f"experiments.replay_search: {notice}", file=sys.stderr)
    rows = []
    for workdir in _WORKDIR.value:
        try:
            curves = replay.load_curves(workdir, _METRIC.value)
            rows += [replay.replay(curves, policy, _DECIDE_SEEDS.value) for policy in chosen]
        except (ValueError, FileNotFoundError) as error:
            raise ValueError(f"--workdir={workdir}: {error}") from None
    if _JSON.value:
        for row in rows:
            print(json.dumps(row, sort_keys=True))
    else:
        print(tables(rows))


if __name__ == "__main__":
    cli.run(main)
