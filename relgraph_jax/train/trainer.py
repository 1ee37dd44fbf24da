"""train_and_evaluate(config, workdir): every variant of a sweep, one compiled program per
bucket (variants of one model structure and neighbouring widths, padded to the widest).

Order of work, so that mistakes surface in seconds: validate the config, resolve and
budget-match the graphs, validate the data and the workdir; only then load data, build
the stacked states and compile. Each evaluation's records are appended to
WORKDIR/results.jsonl before the checkpoint is written, so a kill anywhere loses at most
the work since the last checkpoint and never duplicates a record.

How a step runs: `step.train_step` is one variant's update; `programs.build` wraps it once
per bucket for all its variants, the devices and a chunk of steps; the loop below calls
those programs with the batches the feed puts on the devices, and asks `due` whether it is
time to log, evaluate or save.
"""
from __future__ import annotations

import contextlib
import dataclasses
import signal
import time

import jax
import jax.numpy as jnp
import numpy as np

from relgraph_jax import budget as budget_lib
from relgraph_jax import data as data_lib
from relgraph_jax import models as models_lib
from relgraph_jax import relational, results
from relgraph_jax.train import checkpoint as checkpoint_lib
from relgraph_jax.train import feeds, optim, variants as variants_lib
from relgraph_jax.train import mesh as mesh_lib
from relgraph_jax.train import programs as programs_lib
from relgraph_jax.train import step as step_lib
from relgraph_jax.train import workdir as workdir_lib
from relgraph_jax.train.state import VARIABLE_COLLECTIONS, TrainState
from relgraph_jax.train.validate import validate_config


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
        return {k: variables[k] for k in VARIABLE_COLLECTIONS}

    keys = jax.vmap(jax.random.key)(np.asarray(seeds, np.uint32))
    compiled = jax.jit(jax.vmap(init)).lower(keys).compile(compiler_options=_INIT_COMPILER_OPTIONS)
    stacked = jax.device_get(compiled(keys))
    return {seed: jax.tree.map(lambda x, i=i: x[i], stacked) for i, seed in enumerate(seeds)}


def build_state(config, variant_list, slots, model, tx, sample) -> TrainState:
    """Host numpy states of all variants, stacked; slots beyond the variants repeat the last.

    Each variant is initialised at its own widths from its seed, then zero-padded to the
    shared (widest) shapes, so padding never changes what a variant computes.
    """
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), sample, train=False))
    shapes = {k: shapes[k] for k in VARIABLE_COLLECTIONS}
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
        per_variant.append(TrainState.fresh(variables, jax.device_get(opt_state)))
    per_variant += [per_variant[-1]] * (slots - len(per_variant))
    return variants_lib.stack(per_variant)


@dataclasses.dataclass
class Bucket:
    """Variants of one structure and neighbouring widths that share one model and programs.

    Slot i of the stacked state holds variants[i]; slots beyond them repeat the last one.
    seed_index[i]: which of the sweep's seeds (and so which batch of each step) slot i
    trains on.
    """
    variants: list
    widths: tuple
    slots: int
    programs: programs_lib.Programs
    state: TrainState
    seed_index: jax.Array

    @property
    def slot_ids(self) -> list[int]:
        ids = [v.id for v in self.variants]
        return ids + [ids[-1]] * (self.slots - len(ids))


@dataclasses.dataclass
class Sweep:
    """Everything a sweep's steps need: its buckets and the batch feed."""
    buckets: list
    feed: object
    resident: bool
    steps_per_epoch: int
    shard: mesh_lib.Shardings


def _padded_cost(config, input_shape):
    """Per-slot cost of running at per-stage widths: the MACs of the complete graph there
    (what the mask path computes whatever the graph)."""
    complete = f"complete:n={config.model.nodes}"
    return lambda widths: budget_lib.count(config.model, complete, widths, input_shape).macs


def build_sweep(config, variant_list, source, resident, data_spec, steps_per_epoch) -> Sweep:
    """Mesh, buckets (model, stacked initial state, programs each) and batch feed."""
    train_cfg = config.train
    mesh = mesh_lib.make_mesh(config.mesh.data, config.mesh.devices)
    shard = mesh_lib.shardings(mesh)
    tx = optim.make_optimizer(train_cfg, steps_per_epoch)
    sample = np.zeros((1,) + tuple(source.image_shape), np.float32)
    seeds = sorted({v.seed for v in variant_list})
    eval_bs = min(train_cfg.eval_batch_size, source.num_test)
    batches = programs_lib.BatchConfig(train_cfg.batch_size, eval_bs, tuple(source.mean),
                                       tuple(source.std), data_spec)
    groups = variants_lib.width_buckets(variant_list, train_cfg.width_buckets,
                                        _padded_cost(config, tuple(source.image_shape)))
    _log(f"{len(variant_list)} variants in {len(groups)} bucket(s) "
         f"({', '.join(f'{len(g)} x {list(variants_lib.widest(g))}' for g in groups)}) on "
         f"{mesh.devices.size} devices, {train_cfg.epochs} epochs x {steps_per_epoch} steps, data "
         f"{source.name}: {source.num_train} train / {source.num_test} test")
    buckets = []
    for group in groups:
        widths = variants_lib.widest(group)
        slots = mesh_lib.variant_slots(len(group), mesh, train_cfg.variant_batch)
        # Built from the group's graph with the most in-neighbours: in the gather layout
        # that sets the degree slots every variant's tables and kernels are padded to.
        graph = max(group, key=lambda v: relational.max_in_degree(v.graph)).graph
        model = models_lib.build(config.model, graph, width=widths)
        cfg = step_lib.StepConfig(model, tx, steps_per_epoch, train_cfg.bn_group_size,
                                  jnp.dtype(train_cfg.compute_dtype),
                                  mesh_lib.batch_spec(mesh))
        programs = programs_lib.build(cfg, batches, mesh,
                                      train_cfg.variant_batch or slots // mesh.shape["variants"])
        state = mesh_lib.put(build_state(config, group, slots, model, tx, sample), shard.variants)
        seed_of = [v.seed for v in group] + [group[-1].seed] * (slots - len(group))
        seed_index = np.searchsorted(np.asarray(seeds), seed_of).astype(np.int32)
        buckets.append(Bucket(group, widths, slots, programs, state,
                              mesh_lib.put(seed_index, shard.variants)))
    feed = (feeds.ResidentFeed(source, shard, seeds, eval_bs, steps_per_epoch) if resident else
            feeds.StreamFeed(source, shard, seeds, train_cfg.batch_size, eval_bs, steps_per_epoch))
    return Sweep(buckets, feed, resident, steps_per_epoch, shard)


def train_steps(run: Sweep, step: int, num_steps: int) -> None:
    """Advances every bucket by num_steps steps from `step` (within one epoch)."""
    if run.resident:
        inputs = run.feed.epoch_inputs(step)
        for b in run.buckets:
            b.state = b.programs.train_resident(b.state, b.seed_index, *inputs, jnp.int32(step),
                                                jnp.int32(num_steps))
        return
    for s in range(step, step + num_steps):
        images, labels = run.feed.batch(s)
        for b in run.buckets:
            b.state = b.programs.train_streamed(b.state, b.seed_index, images, labels,
                                                jnp.int32(s))


def precise_bn(run: Sweep, epoch: int, num_batches: int, step: int) -> None:
    """Replaces every variant's BatchNorm statistics by precise BN's estimate from the first
    num_batches batches of `epoch` (drawn as training batches are); `step` is the training
    step reached, where a variant whose estimate is not finite is marked failed."""
    if run.resident:
        inputs = run.feed.epoch_inputs(epoch * run.steps_per_epoch)
        for b in run.buckets:
            b.state = b.programs.precise_bn_resident(
                b.state, b.seed_index, *inputs, jnp.int32(epoch * run.steps_per_epoch),
                num_batches, jnp.int32(step))
        return
    sums = [None] * len(run.buckets)
    for images, _ in run.feed.epoch_batches(epoch, num_batches):
        for i, b in enumerate(run.buckets):
            got = b.programs.bn_moments_streamed(b.state, b.seed_index, images)
            sums[i] = got if sums[i] is None else jax.tree.map(jnp.add, sums[i], got)
    for b, total in zip(run.buckets, sums):
        b.state = b.programs.set_precise_bn(b.state, total, num_batches, jnp.int32(step))


def evaluate(run: Sweep, bucket: Bucket) -> tuple[np.ndarray, np.ndarray]:
    """(summed test loss, correct count) per variant slot, as float64 host arrays."""
    loss, correct = 0.0, 0.0
    for x, y, valid in run.feed.test_batches():
        batch_loss, batch_correct = mesh_lib.fetch(bucket.programs.evaluate(bucket.state, x, y))
        loss = loss + batch_loss[:, valid].astype(np.float64).sum(1)
        correct = correct + batch_correct[:, valid].sum(1).astype(np.float64)
    return loss, correct


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


def _metrics(run: Sweep, num_variants: int) -> dict:
    """Per-variant training sums and test results of all buckets, indexed by variant id."""
    metrics = {}
    for b in run.buckets:
        test_loss, correct = evaluate(run, b)
        sums = mesh_lib.fetch({"loss_sum": b.state.loss_sum, "loss_count": b.state.loss_count,
                                "failed": b.state.failed, "failed_step": b.state.failed_step})
        sums.update(test_loss=test_loss, correct=correct)
        ids = [v.id for v in b.variants]
        for key, values in sums.items():
            merged = metrics.setdefault(key, np.zeros(num_variants, values.dtype))
            merged[ids] = values[:len(ids)]
    return metrics


def _evaluate_and_record(run, variant_list, grid_names, model_name, step, epoch, store):
    """Evaluates every variant, appends the epoch's records, logs a one-line summary."""
    metrics = _metrics(run, len(variant_list))
    recs = _records(variant_list, grid_names, model_name, epoch, step, metrics, run.feed.num_test)
    if store is not None:
        store.append(recs)
    ok = [r["test_error"] for r in recs if r["status"] == "ok"]
    summary = f"mean {np.mean(ok):.2f}% best {min(ok):.2f}%" if ok else "no variant left"
    failed = len(recs) - len(ok)
    _log(f"eval epoch {epoch}: test error {summary}" + (f", {failed} variants failed" if failed else ""))


def due(before: int, after: int, every: int) -> bool:
    """Whether a multiple of `every` (0: never) lies in (before, after]: is it time to act
    after the steps from `before` to `after`?"""
    return bool(every) and after // every > before // every


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


def _save(run: Sweep, ckpts, step: int) -> None:
    """Checkpoints every bucket's real variants, keyed by variant id."""
    ckpts.save(step, [([v.id for v in b.variants], mesh_lib.fetch(b.state)) for b in run.buckets])


def _restore(run: Sweep, ckpts, step: int) -> None:
    """Fills every bucket's state from the checkpoint at `step`, whatever layout wrote it."""
    restored = ckpts.restore(step, [(b.slot_ids, b.state) for b in run.buckets])
    for b, state in zip(run.buckets, restored):
        b.state = mesh_lib.put(state, run.shard.variants)


def train_and_evaluate(config, workdir: str, stop_after_steps: int | None = None) -> dict:
    """Trains every variant of `config`, appending records to WORKDIR/results.jsonl.

    Resumes from the workdir's latest checkpoint, whatever device count, buckets or
    variant batch wrote it. `stop_after_steps` (tests, chaos runs) stops after that many
    steps of this invocation as a preemption would: checkpoint, exit. Returns a summary
    dict (variants, steps run, last step, whether it finished).
    """
    validate_config(config)
    variant_list = variants_lib.build_variants(config)
    grid_names, _ = variants_lib.grid_combinations(config)
    data_spec = data_lib.validate(config.data)
    workdir_lib.check_writable(workdir)
    workdir_lib.check_compatible(workdir, config.to_dict())

    source, resident = _open_data(data_spec)
    if tuple(source.image_shape) != tuple(config.input_shape):
        raise ValueError(f"data images have shape {tuple(source.image_shape)} but "
                         f"config.input_shape is {tuple(config.input_shape)}; set them equal")
    train_cfg = config.train
    steps_per_epoch = source.num_train // train_cfg.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"config.train.batch_size={train_cfg.batch_size} exceeds the "
                         f"{source.num_train} training examples")
    workdir_lib.claim(workdir, config.to_dict())
    total_steps = steps_per_epoch * train_cfg.epochs

    run = build_sweep(config, variant_list, source, resident, data_spec, steps_per_epoch)
    ckpts = checkpoint_lib.Checkpoints(workdir)
    store = results.ResultsStore(workdir) if jax.process_index() == 0 else None
    if store is not None and store.repaired_bytes:
        _log(f"repaired a torn last line of {store.path} ({store.repaired_bytes} bytes cut)")
    step = ckpts.latest_step() or 0
    if step:
        _restore(run, ckpts, step)
        _log(f"resumed from checkpoint at step {step} (epoch {step / steps_per_epoch:.2f})")

    stop = _StopFlag()
    steps_run = 0
    samples_per_step = train_cfg.batch_size * len(variant_list)
    t_start = time.time()
    try:
        with stop.installed():
            while step < total_steps:
                n = min(train_cfg.steps_per_call, steps_per_epoch - step % steps_per_epoch)
                if train_cfg.checkpoint_every_steps:
                    n = min(n, train_cfg.checkpoint_every_steps - step % train_cfg.checkpoint_every_steps)
                if stop_after_steps is not None:
                    n = min(n, stop_after_steps - steps_run)
                train_steps(run, step, n)
                before, step, steps_run = step, step + n, steps_run + n
                epoch, epoch_done = divmod(step, steps_per_epoch)[0], step % steps_per_epoch == 0
                if epoch_done and train_cfg.precise_bn_samples:
                    # Batches of an epoch training never reaches: drawn as training batches
                    # are, but not the same ones, and the same again on a resume.
                    precise_bn(run, train_cfg.epochs + epoch,
                               min(train_cfg.precise_bn_samples // train_cfg.batch_size, steps_per_epoch), step)
                if epoch_done or due(steps_run - n, steps_run, train_cfg.log_every_steps):
                    jax.block_until_ready([b.state.loss_sum for b in run.buckets])
                    rate = steps_run * samples_per_step / max(time.time() - t_start, 1e-9)
                    eta = (total_steps - step) * samples_per_step / max(rate, 1e-9)
                    _log(f"epoch {step / steps_per_epoch:.2f}/{train_cfg.epochs} | step {step}/{total_steps}"
                         f" | {len(variant_list)} variants | {rate:,.0f} model-samples/s | "
                         f"ETA {_format_eta(eta)}")
                should_stop = stop.requested or (stop_after_steps is not None
                                                 and steps_run >= stop_after_steps)
                if epoch_done and (due(epoch - 1, epoch, train_cfg.eval_every) or step == total_steps):
                    _evaluate_and_record(run, variant_list, grid_names, config.model.name, step,
                                         epoch, store)
                    _save(run, ckpts, step)
                elif should_stop or due(before, step, train_cfg.checkpoint_every_steps):
                    _save(run, ckpts, step)
                if should_stop:
                    if step < total_steps:
                        _log(f"stopped at step {step}: checkpoint saved; rerun the same command "
                             "to resume")
                    break
    finally:
        run.feed.close()
        ckpts.close()
    finished = step >= total_steps
    if finished:
        _log(f"done: {len(variant_list)} variants x {train_cfg.epochs} epochs; results in "
             f"{store.path if store else workdir}")
    return {"variants": len(variant_list), "steps_run": steps_run, "step": step,
            "finished": finished, "stopped_by_signal": stop.requested}
