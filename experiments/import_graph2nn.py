r"""Import the authors' recorded runs (graph2nn's final_results) as project workdirs.

  python -m experiments.import_graph2nn --task resnet34_imagenet \
      --out runs/graph2nn/resnet34_imagenet
  python -m experiments.import_graph2nn --task all --out runs/graph2nn   # one workdir per task
  python -m experiments.analyze --workdir runs/graph2nn/resnet34_imagenet

--src (default: the authors' file the package ships, `graph2nn_results.DEFAULT_SRC`) is
graph2nn's `final_results` folder or a `final_results.tar.xz`. TASK is
one of mlp_cifar10, cnn6_imagenet, resnet34_imagenet, resnet34_sep_imagenet,
resnet50_imagenet, efficientnet_imagenet, or all (then OUT/TASK for each).

Each workdir gets `results.jsonl` with one record per (graph, seed, epoch) in the
project's schema (graphs as `paper:SET/INDEX` with the project's C and L, the baseline as
`complete:n=N`, `test_error` = the authors' top-1 error), keeping the authors' logged
`width`, `gflops`, `params_m`, `top5_error` and `time_per_iter`; and `config.json`, which
says where the data came from and which runs the authors' files lack (they are reported,
never invented). Variant ids number the graphs in set order, the complete graph last,
then the authors' training seeds. OUT must be new, empty, or this import's own folder of
the same task and source, which a rerun keeps (so a rerun after a kill completes an
`all` import); any other folder is refused, its files untouched.

Epoch E is the evaluation after E epochs of training. The authors' epoch-0 files are left
out: their logger evaluates "at initialisation" whenever a job starts, so a job that was
restarted from a checkpoint wrote the restored model's error there (ResNet-34 seed 1 has
25.8 % for the complete graph at "epoch 0", its final error), not the untrained model's.
"""
from __future__ import annotations

import json
import os

from absl import flags

from experiments import cli, outdir
from relgraph_jax import results
from relgraph_jax.graph2nn_results import DEFAULT_SRC

_SRC = flags.DEFINE_string("src", DEFAULT_SRC, "graph2nn's final_results folder or "
                           "final_results.tar.xz (default: the authors' file the package ships).")
_TASK = flags.DEFINE_string("task", None, "The recorded task to import, or 'all'.")
_OUT = flags.DEFINE_string("out", None, "The workdir to write (for 'all': one folder per task in it).")
COMMAND = "experiments.import_graph2nn"


def import_tasks(src: str, tasks: list[str], out: str) -> dict[str, dict]:
    """Writes one workdir per task (OUT itself for a single task); returns each config.json.

    Every target is checked before anything is read: new, empty, or this import's own
    finished folder of the same task and source (skipped: a rerun after a kill completes
    the rest). Each workdir is built beside its target and renamed into place, so a folder
    is either the whole import or absent.
    """
    from relgraph_jax import graph2nn_results
    if len(tasks) > 1 and os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out!r} is a file; --task all writes one folder per task in "
                         "a folder: give a new or existing folder")
    targets = {task: out if len(tasks) == 1 else os.path.join(out, task) for task in tasks}
    mark = {task: {"task": task, "src": os.path.abspath(src)} for task in tasks}
    written, todo = {}, []
    for task, workdir in targets.items():
        _refuse_unmarked_import(workdir)
        if outdir.check_replaceable(workdir, COMMAND):
            found = {k: v for k, v in outdir.made_by(workdir).items() if k != "command"}
            if found != mark[task]:
                raise ValueError(f"--out {workdir!r} holds an import of task {found.get('task')!r} "
                                 f"from {found.get('src')!r}; importing never overwrites or "
                                 "mixes results: use a new --out or delete that folder")
            try:
                with open(os.path.join(workdir, "config.json")) as f:
                    written[task] = {**json.load(f), "already_imported": True}
            except (OSError, ValueError) as e:
                raise ValueError(f"--out {workdir!r} is an import of task {task!r} whose "
                                 f"config.json is unreadable ({e}); delete that folder and "
                                 "rerun to import it again") from e
        else:
            todo.append(task)
    if not todo:
        return written
    runs = graph2nn_results.load_runs(src, todo, epochs="all")
    runs = {task: [r for r in task_runs if r.epoch > 0] for task, task_runs in runs.items()}
    empty = [task for task in todo if not runs[task]]
    if empty:
        raise ValueError(f"--src {src!r} holds no file of task(s) {', '.join(empty)}")
    if len(tasks) > 1:
        _make_folder(out)
    for task in todo:
        records, missing = _records(task, runs[task])
        config = {"source": {"kind": "graph2nn final_results (the authors' recorded runs)",
                             "path": os.path.abspath(src), "task": task},
                  "model": {"name": graph2nn_results.TASKS[task].model},
                  "graphs": graph2nn_results.TASKS[task].graph_set,
                  "epochs": sorted({r["epoch"] for r in records}),
                  "seeds": sorted({r["seed"] for r in records}),
                  "records": len(records), "missing_runs": missing,
                  "left_out": "epoch 0: the authors' logger wrote the evaluation of whatever "
                              "checkpoint a (re)started job loaded there, not of the untrained "
                              "model",
                  "fields": "test_error = the authors' top-1 error (%); width, gflops, "
                            "params_m, top5_error, time_per_iter as their logger wrote them"}
        with outdir.built_aside(targets[task], COMMAND, **mark[task]) as staging:
            _write(staging, records, config)
        written[task] = config
    return written


def _refuse_unmarked_import(workdir: str) -> None:
    """An import made before imports were marked (config.json says so, no mark) gets its
    own message: it is kept, not replaced."""
    try:
        with open(os.path.join(workdir, "config.json")) as f:
            kind = json.load(f).get("source", {}).get("kind", "")
    except (OSError, ValueError, AttributeError):
        return
    if kind.startswith("graph2nn final_results") and outdir.made_by(workdir) is None:
        raise ValueError(f"--out {workdir!r} holds an import made by an earlier version (no "
                         f"{outdir.MARKER}); it is kept as it is: delete it and rerun to import "
                         "it again, or give a new --out")


def _make_folder(path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise ValueError(f"cannot make --out {path!r} ({e.strerror}); give a folder you can "
                         "write to") from e


def _records(task: str, runs) -> tuple[list[dict], list[dict]]:
    """Project-schema records of one task, and the (graph, seed) runs the files lack."""
    from relgraph_jax import graphs
    from relgraph_jax.graph2nn_results import TASKS
    info = TASKS[task]
    order = [g.spec for g in graphs.resolve(f"paper:{info.graph_set}")]
    complete = f"complete:n={runs[0].nodes}"
    present = {r.graph for r in runs}
    specs = [s for s in order if s in present] + [complete]
    seeds = sorted({r.seed for r in runs})
    epochs = sorted({r.epoch for r in runs})
    variant_of = {(spec, seed): i for i, (spec, seed) in
                  enumerate((spec, seed) for spec in specs for seed in seeds)}
    measured = {spec: graphs.RelationalGraph.from_spec(spec) for spec in specs}
    records = []
    for run in sorted(runs, key=lambda r: (variant_of[(r.graph, r.seed)], r.epoch)):
        g = measured[run.graph]
        records.append({"variant": variant_of[(run.graph, run.seed)], "epoch": run.epoch,
                        "graph": run.graph, "C": g.C, "L": g.L, "seed": run.seed,
                        "model": info.model, "hparams": {}, "status": "ok",
                        "test_error": run.top1_error, "top5_error": run.top5_error,
                        "width": run.width, "gflops": run.gflops, "params_m": run.params_m,
                        "time_per_iter": run.time_per_iter})
    have = {(r.graph, r.seed, r.epoch) for r in runs}
    missing = []
    for (spec, seed) in variant_of:
        lacking = [e for e in epochs if (spec, seed, e) not in have]
        if lacking:
            missing.append({"graph": spec, "seed": seed, "epochs": results.ranges(lacking)})
    return records, missing


def _write(workdir: str, records: list[dict], config: dict) -> None:
    """config.json and results.jsonl, each written whole to a temporary file and renamed."""
    results.write_atomically(os.path.join(workdir, "config.json"),
                             (json.dumps(config, indent=1, sort_keys=True) + "\n").encode())
    results.write_atomically(os.path.join(workdir, results.RESULTS_FILE), results.encode(records))


def _tasks_asked() -> list[str]:
    """The tasks asked for; a bad flag fails with one line, before anything is read."""
    from relgraph_jax.graph2nn_results import TASKS
    for name, flag in (("src", _SRC), ("task", _TASK), ("out", _OUT)):
        if not flag.value:
            cli.fail(f"--{name} is required (see --helpfull)")
    if _TASK.value != "all" and _TASK.value not in TASKS:
        cli.fail(f"--task={_TASK.value!r} is not a recorded task; allowed: {', '.join(TASKS)} or all")
    if not os.path.exists(_SRC.value):
        cli.fail(f"--src {_SRC.value!r} does not exist; give graph2nn's final_results folder or "
                 "final_results.tar.xz")
    return list(TASKS) if _TASK.value == "all" else [_TASK.value]


def main(argv):
    if len(argv) > 1:
        cli.fail(f"unexpected arguments: {argv[1:]}")
    tasks = _tasks_asked()
    written = import_tasks(_SRC.value, tasks, _OUT.value)  # a ValueError: one line (cli.run)
    for task, config in written.items():
        where = _OUT.value if len(tasks) == 1 else os.path.join(_OUT.value, task)
        if config.get("already_imported"):
            print(f"{task}: already imported in {where} (kept as it is)")
            continue
        lacking = "; ".join(f"{m['graph']} seed {m['seed']} (epochs {m['epochs']})"
                            for m in config["missing_runs"]) or "none"
        print(f"{task}: {config['records']} records -> {where}; runs missing in the "
              f"authors' files: {lacking}")


if __name__ == "__main__":
    cli.run(main)
