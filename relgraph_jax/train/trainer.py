"""train_and_evaluate(config, workdir): every variant of a sweep, one compiled program per
width bucket (variants of neighbouring widths, padded to the bucket's widest).

Order of work, so that mistakes surface in seconds: validate the config, resolve and
budget-match the graphs, validate the data and the workdir; only then load data, build
the stacked state and compile. Each evaluation's records are appended to
WORKDIR/results.jsonl before the checkpoint is written, so a kill anywhere loses at most
the work since the last checkpoint and never duplicates a record.
"""
from __future__ import annotations

import contextlib
import dataclasses
import signal
import time

import jax
import numpy as np

from relgraph_jax import budget as budget_lib
from relgraph_jax import data as data_lib
from relgraph_jax import models as models_lib
from relgraph_jax import relational
from relgraph_jax.train import checkpoint as checkpoint_lib
from relgraph_jax.train import feeds, optim, results, variants as variants_lib
from relgraph_jax.train import mesh as mesh_lib
from relgraph_jax.train import step as step_lib
from relgraph_jax.train import workdir as workdir_lib
from relgraph_jax.train.validate import validate_config

STATE_COLLECTIONS = ("params", "batch_stats", "masks")


class _StopFlag:
    """Turns SIGTERM (preemption) into a request to checkpoint and exit after the chunk."""

    def __init__(self):
        self.requested = False

    @contextlib.contextmanager
    def installed(self):
        try:
            previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread: the caller handles signals
            yield
            return
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)

    def _handle(self, signum, frame):
        self.requested = True


def _log(msg: str) -> None:
    if jax.process_index() == 0:
        print(msg, flush=True)


# Initialisation programs are tiny but there is one per width: compiling them without
# XLA's expensive optimisation passes makes start-up several times faster on CPU.
_INIT_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0,
                          "xla_llvm_disable_expensive_passes": True}


def _init_graph_variants(config, graph, widths, seeds, sample):
    """Variables of `graph` at its own `widths` for each seed, from one compiled program."""
    model = models_lib.build(config.model, graph, width=widths)

    def init(key):
        variables = model.init(key, sample, train=False)
        return {k: variables[k] for k in STATE_COLLECTIONS}

    keys = jax.vmap(jax.random.key)(np.asarray(seeds, np.uint32))
    compiled = jax.jit(jax.vmap(init)).lower(keys).compile(compiler_options=_INIT_COMPILER_OPTIONS)
    stacked = jax.device_get(compiled(keys))
    return {seed: jax.tree.map(lambda x, i=i: x[i], stacked) for i, seed in enumerate(seeds)}


def build_state(config, variant_list, slots, model, tx, sample):
    """Host numpy state of all variants, stacked; slots beyond the variants repeat the last.

    Each variant is initialised at its own widths from its seed, then zero-padded to the
    shared (widest) shapes, so padding never changes what a variant computes.
    """
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), sample, train=False))
    shapes = {k: shapes[k] for k in STATE_COLLECTIONS}
    seeds_of = {}
    for v in variant_list:
        seeds_of.setdefault((v.graph, v.widths), set()).add(v.seed)
    inits = {}
    for (graph, widths), seeds in seeds_of.items():
        for seed, variables in _init_graph_variants(config, graph, widths, sorted(seeds),
                                                    sample).items():
            inits[(graph, widths, seed)] = variants_lib.pad_to(variables, shapes)
    opt_init = jax.jit(tx.init)
    per_variant = []
    for v in variant_list:
        variables = inits[(v.graph, v.widths, v.seed)]
        opt_state = optim.set_hyperparams(opt_init(variables["params"]), v.lr, v.weight_decay)
        per_variant.append({**variables, "opt_state": jax.device_get(opt_state),
                            "failed": np.bool_(False), "failed_step": np.int32(-1),
                            "loss_sum": np.float32(0), "loss_count": np.float32(0)})
    per_variant += [per_variant[-1]] * (slots - len(per_variant))
    return variants_lib.stack(per_variant)


def _variant_constants(variant_list, slots, seeds):
    """Per slot: which of the sweep's seeds (and so which batch of each step) it trains on."""
    seed = np.array([v.seed for v in variant_list]
                    + [variant_list[-1].seed] * (slots - len(variant_list)), np.int32)
    return {"seed_index": np.searchsorted(np.asarray(seeds), seed).astype(np.int32)}


def _records(variant_list, grid_names, model_name, epoch, step, metrics, n_test):
    out = []
    for v in variant_list:
        i = v.id
        rec = v.record_fields(model_name, grid_names)
        rec.update(epoch=epoch, step=step)
        if metrics["failed"][i]:
            rec.update(status="failed", train_loss=None, test_loss=None, test_error=None,
                       failure=f"non-finite loss or parameters at step "
                               f"{int(metrics['failed_step'][i])}; variant frozen there")
        else:
            rec.update(status="ok", failure=None,
                       train_loss=float(metrics["loss_sum"][i] / max(metrics["loss_count"][i], 1.0)),
                       test_loss=float(metrics["test_loss"][i] / n_test),
                       test_error=100.0 * (1.0 - round(float(metrics["correct"][i])) / n_test))
        out.append(rec)
    return out


def _bucket_metrics(feed, buckets, num_variants) -> dict:
    """Per-variant training sums and test results of all buckets, indexed by variant id."""
    metrics = {}
    for b in buckets:
        test_loss, correct = feed.evaluate(b)
        found = mesh_lib.fetch({k: b.state[k] for k in ("loss_sum", "loss_count", "failed",
                                                        "failed_step")})
        found.update(test_loss=np.asarray(test_loss), correct=np.asarray(correct))
        ids = [v.id for v in b.variants]
        for key, values in found.items():
            merged = metrics.setdefault(key, np.zeros(num_variants, values.dtype))
            merged[ids] = values[:len(ids)]
    return metrics


def _evaluate_and_record(feed, buckets, variant_list, grid_names, model_name, step, epoch, store):
    """Evaluates every variant, appends the epoch's records, logs a one-line summary."""
    metrics = _bucket_metrics(feed, buckets, len(variant_list))
    recs = _records(variant_list, grid_names, model_name, epoch, step, metrics, feed.num_test)
    if store is not None:
        store.append(recs)
    ok = [r["test_error"] for r in recs if r["status"] == "ok"]
    summary = f"mean {np.mean(ok):.2f}% best {min(ok):.2f}%" if ok else "no variant left"
    failed = len(recs) - len(ok)
    _log(f"eval epoch {epoch}: test error {summary}" + (f", {failed} variants failed" if failed else ""))


def _format_eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def _open_data(data_spec):
    """(source, resident): a whole Dataset held on the devices, or an ImageNet stream.

    Either has num_train, num_test, mean, std, image_shape and name.
    """
    if data_lib.is_streaming(data_spec):
        return data_lib.open_stream(data_spec), False
    return data_lib.load(data_spec), True


@dataclasses.dataclass
class Bucket:
    """Variants of one structure and neighbouring widths that share one model and program.

    Slot i of the stacked state holds variants[i]; slots beyond them repeat the last one.
    """
    variants: list
    widths: tuple
    slots: int
    programs: step_lib.Programs
    state: dict
    vconst: dict


@dataclasses.dataclass
class Run:
    """Everything a sweep's steps need: the width buckets and the batch feed."""
    buckets: list
    feed: object

    @property
    def state(self) -> dict:
        """All buckets' states as one tree (what checkpoints hold)."""
        return {f"bucket{i}": b.state for i, b in enumerate(self.buckets)}

    @state.setter
    def state(self, tree: dict) -> None:
        for i, b in enumerate(self.buckets):
            b.state = tree[f"bucket{i}"]


def _padded_cost(config, input_shape):
    """Per-slot cost of running at per-stage widths: the MACs of the complete graph there
    (what the mask path computes whatever the graph)."""
    complete = f"complete:n={config.model.nodes}"
    return lambda widths: budget_lib.count(config.model, complete, widths, input_shape).macs


def build_run(config, variant_list, source, resident, data_spec, steps_per_epoch) -> Run:
    """Mesh, width buckets (model, stacked initial state, programs each) and batch feed."""
    tc = config.train
    mesh = mesh_lib.make_mesh(config.mesh.data, config.mesh.devices)
    shard = mesh_lib.shardings(mesh)
    tx = optim.make_optimizer(tc, steps_per_epoch)
    sample = np.zeros((1,) + tuple(source.image_shape), np.float32)
    seeds = sorted({v.seed for v in variant_list})
    eval_bs = min(tc.eval_batch_size, source.num_test)
    groups = variants_lib.width_buckets(variant_list, tc.width_buckets,
                                        _padded_cost(config, tuple(source.image_shape)))
    _log(f"{len(variant_list)} variants in {len(groups)} width bucket(s) "
         f"({', '.join(f'{len(g)} x {list(variants_lib.widest(g))}' for g in groups)}) on "
         f"{mesh.devices.size} devices, {tc.epochs} epochs x {steps_per_epoch} steps, data "
         f"{source.name}: {source.num_train} train / {source.num_test} test")
    buckets = []
    for group in groups:
        widths = variants_lib.widest(group)
        slots = mesh_lib.variant_slots(len(group), mesh, tc.variant_batch)
        # Built from the group's graph with the most in-neighbours: in the gather layout
        # that sets the degree slots every variant's tables and kernels are padded to.
        graph = max(group, key=lambda v: relational.max_in_degree(v.graph)).graph
        model = models_lib.build(config.model, graph, width=widths)
        programs = step_lib.Programs(
            model, tx, mesh, batch_size=tc.batch_size, steps_per_epoch=steps_per_epoch,
            data_spec=data_spec, mean=source.mean, std=source.std, eval_batch_size=eval_bs,
            variant_batch=tc.variant_batch or slots // mesh.shape["variants"],
            compute_dtype=tc.compute_dtype, bn_group_size=tc.bn_group_size)
        state = mesh_lib.put(build_state(config, group, slots, model, tx, sample), shard.variants)
        vconst = mesh_lib.put(_variant_constants(group, slots, seeds), shard.variants)
        buckets.append(Bucket(group, widths, slots, programs, state, vconst))
    feed = (feeds.ResidentFeed(source, shard, seeds, eval_bs, steps_per_epoch) if resident else
            feeds.StreamFeed(source, shard, seeds, tc.batch_size, eval_bs, steps_per_epoch))
    return Run(buckets, feed)


def _check_stackable(config, variant_list) -> None:
    """The blocks layout bakes one graph's block list into the program; variants of other
    graphs cannot share it, so a sweep over several graphs needs mask or gather."""
    graphs = {v.graph.spec for v in variant_list}
    if config.model.get("impl") == "blocks" and len(graphs) > 1:
        raise ValueError(f"model.impl='blocks' compiles one graph's blocks into the program, but "
                         f"this sweep has {len(graphs)} graphs; use model.impl='mask' or (MLP) "
                         "'gather', which carry each variant's graph as data")


def train_and_evaluate(config, workdir: str, stop_after_steps: int | None = None) -> dict:
    """Trains every variant of `config`, appending records to WORKDIR/results.jsonl.

    Resumes from the workdir's latest checkpoint. `stop_after_steps` (tests, chaos runs)
    stops after that many steps of this invocation as a preemption would: checkpoint, exit.
    Returns a summary dict (variants, steps run, last step, whether it finished).
    """
    validate_config(config)
    variant_list = variants_lib.build_variants(config)
    _check_stackable(config, variant_list)
    grid_names, _ = variants_lib.grid_combinations(config)
    data_spec = data_lib.validate(config.data)
    workdir_lib.check_writable(workdir)
    workdir_lib.check_compatible(workdir, config.to_dict())

    source, resident = _open_data(data_spec)
    if tuple(source.image_shape) != tuple(config.input_shape):
        raise ValueError(f"data images have shape {tuple(source.image_shape)} but "
                         f"config.input_shape is {tuple(config.input_shape)}; set them equal")
    tc = config.train
    steps_per_epoch = source.num_train // tc.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"config.train.batch_size={tc.batch_size} exceeds the "
                         f"{source.num_train} training examples")
    workdir_lib.claim(workdir, config.to_dict())
    total_steps = steps_per_epoch * tc.epochs

    run = build_run(config, variant_list, source, resident, data_spec, steps_per_epoch)
    feed = run.feed
    ckpts = checkpoint_lib.Checkpoints(workdir)
    store = results.ResultsStore(workdir) if jax.process_index() == 0 else None
    if store is not None and store.repaired_bytes:
        _log(f"repaired a torn last line of {store.path} ({store.repaired_bytes} bytes cut)")
    step = 0
    latest = ckpts.latest_step()
    if latest is not None:
        run.state = ckpts.restore(latest, run.state)
        step = latest
        _log(f"resumed from checkpoint at step {step} (epoch {step / steps_per_epoch:.2f})")

    stop = _StopFlag()
    steps_run = 0
    samples_per_step = tc.batch_size * len(variant_list)
    t_start = time.time()
    try:
        with stop.installed():
            while step < total_steps:
                in_epoch = step % steps_per_epoch
                n = min(tc.steps_per_call, steps_per_epoch - in_epoch)
                if tc.checkpoint_every_steps:
                    n = min(n, tc.checkpoint_every_steps - step % tc.checkpoint_every_steps)
                if stop_after_steps is not None:
                    n = min(n, stop_after_steps - steps_run)
                feed.train(run.buckets, step, n)
                step, steps_run = step + n, steps_run + n
                epoch_done = step % steps_per_epoch == 0
                if epoch_done and tc.precise_bn_samples:
                    # Batches of an epoch training never reaches: drawn as training batches
                    # are, but not the same ones, and the same again on a resume.
                    feed.precise_bn(run.buckets, tc.epochs + step // steps_per_epoch,
                                    min(tc.precise_bn_samples // tc.batch_size, steps_per_epoch),
                                    step)
                if epoch_done or steps_run % tc.log_every_steps < n:
                    jax.block_until_ready([b.state["loss_sum"] for b in run.buckets])
                    rate = steps_run * samples_per_step / max(time.time() - t_start, 1e-9)
                    eta = (total_steps - step) * samples_per_step / max(rate, 1e-9)
                    _log(f"epoch {step / steps_per_epoch:.2f}/{tc.epochs} | step {step}/{total_steps}"
                         f" | {len(variant_list)} variants | {rate:,.0f} model-samples/s | "
                         f"ETA {_format_eta(eta)}")
                should_stop = stop.requested or (stop_after_steps is not None
                                                 and steps_run >= stop_after_steps)
                epoch = step // steps_per_epoch
                if epoch_done and (epoch % tc.eval_every == 0 or step == total_steps):
                    _evaluate_and_record(feed, run.buckets, variant_list, grid_names,
                                         config.model.name, step, epoch, store)
                    ckpts.save(step, run.state)
                elif should_stop or (tc.checkpoint_every_steps
                                     and step % tc.checkpoint_every_steps == 0):
                    ckpts.save(step, run.state)
                if should_stop:
                    if step < total_steps:
                        _log(f"stopped at step {step}: checkpoint saved; rerun the same command "
                             "to resume")
                    break
    finally:
        feed.close()
        ckpts.close()
    finished = step >= total_steps
    if finished:
        _log(f"done: {len(variant_list)} variants x {tc.epochs} epochs; results in "
             f"{store.path if store else workdir}")
    return {"variants": len(variant_list), "steps_run": steps_run, "step": step,
            "finished": finished, "stopped_by_signal": stop.requested}
