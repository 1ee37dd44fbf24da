"""train_and_evaluate(config, workdir): every variant of a sweep, one compiled program per
bucket (variants of one model structure and neighbouring widths, padded to the widest).

Order of work, so that mistakes surface in seconds: validate the config, resolve and
budget-match the graphs, validate the data (and take its fingerprint) and the workdir;
only then load data, take the workdir (process 0: its lock, config, fingerprint, results
store), choose the checkpoint to resume from (`resume.plan`: the newest readable one from
which no record is lost), build the stacked states and compile. Each evaluation's records
are appended to WORKDIR/results.jsonl before the checkpoint is written, so a kill anywhere
loses at most the work since the last checkpoint and never duplicates a record, and a
records write that fails stops the run before that checkpoint. SIGTERM and SIGINT stop it
after the current chunk, with a checkpoint; in a multi-host run a signal that reaches any
process stops every process after the same chunk.

How a step runs: `step.train_step` is one variant's update; `programs.build` wraps it once
per bucket for all its variants, the devices and a chunk of steps; the loop below calls
those programs with the batches the feed puts on the devices, and after each chunk asks the
actions of `periodic` whether it is time for precise BN, the progress line, an evaluation
or a checkpoint (they also cut the chunks).

A live search (`config.search`, relgraph_jax/search/live.py) decides at its rungs, after
the evaluation and before its records are written; the survivors then go on in a sweep
built anew from them (`build_sweep(..., previous=run)`), so the pruned cost nothing.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import signal

import jax
import jax.numpy as jnp
import numpy as np

from relgraph_jax import data as data_lib
from relgraph_jax import models as models_lib
from relgraph_jax import results
from relgraph_jax.data import stream as stream_lib
from relgraph_jax.data.fingerprint import fingerprint as data_fingerprint
from relgraph_jax.data.summary import summarize as summarize_data
from relgraph_jax.search import live as search_live
from relgraph_jax.train import checkpoint as checkpoint_lib
from relgraph_jax.train import dumps as dumps_lib
from relgraph_jax.train import feeds, losses, optim, variants as variants_lib
from relgraph_jax.train import mesh as mesh_lib
from relgraph_jax.train import periodic
from relgraph_jax.train import programs as programs_lib
from relgraph_jax.train import resume as resume_lib
from relgraph_jax.train import step as step_lib
from relgraph_jax.train import workdir as workdir_lib
from relgraph_jax.train.state import TrainState, collections_of
from relgraph_jax.train.validate import check_data, check_memory, validate_config


class _StopFlag:
    """Turns SIGTERM (preemption) and SIGINT (Ctrl-C) into a request to checkpoint and exit
    after the chunk; `signum` says which came. A second signal acts as it would without
    this (Ctrl-C twice stops at once, without a checkpoint)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signum = None
        self._previous = {}

    @contextlib.contextmanager
    def installed(self):
        try:  # a signal ignored at start (SIGINT of a background job) stays ignored
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS
                              if signal.getsignal(s) != signal.SIG_IGN}
        except ValueError:  # not the main thread: the caller handles signals
            yield
            return
        try:
            yield
        finally:
            for s, previous in self._previous.items():
                signal.signal(s, previous)

    def _handle(self, signum, frame):
        self.signum = signum
        for s, previous in self._previous.items():
            signal.signal(s, previous)
        # os.write, not print: a handler may run in the middle of another print.
        os.write(2, f"{signal.Signals(signum).name}: stopping after this chunk with a "
                    "checkpoint (send it again to stop at once)\n".encode())


def _agreed_stop(stop: _StopFlag, run=None) -> int:
    """The signal that stops the run after this chunk, the same on every process (0: go
    on). A preemption's SIGTERM reaches the hosts of a slice at different moments, maybe
    in different chunks; a process deciding alone would save (a collective) and leave while
    the others trained on, each waiting for the other until the run times out.

    The flag is read once `run`'s dispatched chunk has finished, and before the next one
    is dispatched: a signal that comes during a chunk stops the run after that chunk, not
    after the one queued behind it. So the stop takes at most the chunk in flight plus the
    checkpoint (train.steps_per_call sets the chunk), and the epoch's precise BN and
    evaluation when that chunk ends an epoch, for the price of one dispatch gap between
    chunks."""
    if run is not None:
        _wait(run)
    signum = stop.signum or 0
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        signum = int(np.max(multihost_utils.process_allgather(np.int32(signum))))
    return signum


def _wait(run) -> None:
    """Blocks until the chunks dispatched on `run` have finished."""
    jax.block_until_ready([b.state.loss_sum for b in run.buckets])


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
        return collections_of(variables)

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
    shapes = collections_of(shapes)
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
    trains on. `model`: what the programs were built for (with `slots`, what lets a
    bucket packed again by a live search reuse them).
    """
    variants: list
    widths: tuple
    slots: int
    programs: programs_lib.Programs
    state: TrainState
    seed_index: jax.Array
    model: object = None

    @property
    def slot_ids(self) -> list[int]:
        ids = [v.id for v in self.variants]
        return ids + [ids[-1]] * (self.slots - len(ids))


@dataclasses.dataclass
class Sweep:
    """Everything a sweep's steps need: its buckets and the batch feed. `validation`: the
    feed also holds a validation split (held out from training) to evaluate."""
    buckets: list
    feed: object
    resident: bool
    steps_per_epoch: int
    shard: mesh_lib.Shardings
    validation: bool = False

    @property
    def variants(self) -> list:
        """The variants this sweep trains, by id (a live search's survivors only)."""
        return sorted((v for b in self.buckets for v in b.variants), key=lambda v: v.id)


def build_sweep(config, variant_list, source, resident, data_spec, steps_per_epoch,
                previous: Sweep | None = None) -> Sweep:
    """Mesh, buckets (model, stacked initial state, programs each) and batch feed.

    `previous`: a sweep of these variants and more, whose feed is kept and whose states
    move into the new buckets by variant id instead of being initialised: how a live
    search packs its survivors into fewer or narrower buckets.
    """
    train_cfg = config.train
    mesh = mesh_lib.make_mesh(config.mesh.data, config.mesh.devices)
    shard = mesh_lib.shardings(mesh)
    tx = optim.make_optimizer(train_cfg, steps_per_epoch)
    loss = losses.LOSSES[train_cfg.loss].make(train_cfg)
    sample = np.zeros((1,) + tuple(source.image_shape), np.float32)
    seeds = previous.feed.seeds if previous else sorted({v.seed for v in variant_list})
    carried = checkpoint_lib.by_id(_host_states(previous)) if previous else None
    eval_bs = min(train_cfg.eval_batch_size, source.num_test)
    batches = programs_lib.BatchConfig(train_cfg.batch_size, eval_bs, tuple(source.mean),
                                       tuple(source.std), data_spec)
    groups = variants_lib.width_buckets(variant_list, train_cfg.width_buckets,
                                        variants_lib.padded_cost(config, tuple(source.image_shape)))
    _log(f"{len(variant_list)} variants in {len(groups)} bucket(s) "
         f"({', '.join(f'{len(g)} x {list(variants_lib.widest(g))}' for g in groups)}) on "
         f"{mesh.devices.size} devices, {train_cfg.epochs} epochs x {steps_per_epoch} steps, data "
         f"{source.name}: {source.num_train} train / "
         + (f"{data_spec.validation_size} validation / " if data_spec.validation_size else "")
         + f"{source.num_test} test")
    buckets = []
    for group in groups:
        widths = variants_lib.widest(group)
        slots = mesh_lib.variant_slots(len(group), mesh, train_cfg.variant_batch)
        graph = variants_lib.layout_graph(group)
        model = models_lib.build(config.model, graph, width=widths)
        cfg = step_lib.StepConfig(model, tx, loss, steps_per_epoch, train_cfg.bn_group_size,
                                  jnp.dtype(train_cfg.compute_dtype),
                                  mesh_lib.batch_spec(mesh))
        compiled = [b.programs for b in (previous.buckets if previous else ())
                    if (b.model, b.slots) == (model, slots)]
        programs = compiled[0] if compiled else programs_lib.build(
            cfg, batches, mesh, train_cfg.variant_batch or slots // mesh.shape["variants"])
        if carried is None:
            host = build_state(config, group, slots, model, tx, sample)
        else:
            slot_ids = [v.id for v in group] + [group[-1].id] * (slots - len(group))
            template = _state_shapes(model, tx, sample, slots)
            host, = checkpoint_lib.place(carried, [(slot_ids, template)],
                                         "the sweep before the search's rung")
        state = mesh_lib.put(host, shard.variants)
        seed_of = [v.seed for v in group] + [group[-1].seed] * (slots - len(group))
        seed_index = np.searchsorted(np.asarray(seeds), seed_of).astype(np.int32)
        buckets.append(Bucket(group, widths, slots, programs, state,
                              mesh_lib.put(seed_index, shard.variants), model))
    if previous:
        feed = previous.feed
    elif resident:
        feed = feeds.ResidentFeed(source, shard, seeds, eval_bs, steps_per_epoch)
    else:
        feed = feeds.StreamFeed(source, shard, seeds, train_cfg.batch_size, eval_bs,
                                steps_per_epoch)
    return Sweep(buckets, feed, resident, steps_per_epoch, shard, data_spec.validation_size > 0)


def _state_shapes(model, tx, sample, slots: int) -> TrainState:
    """Shapes and dtypes of a bucket's stacked state, computing nothing."""
    def fresh():
        variables = collections_of(model.init(jax.random.key(0), sample, train=False))
        return TrainState.fresh(variables, tx.init(variables["params"]))
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct((slots,) + s.shape, s.dtype),
                        jax.eval_shape(fresh))


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


def evaluate(run: Sweep, bucket: Bucket, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """(summed loss, correct count) per variant slot on the test set or ("validation") the
    validation split, as float64 host arrays."""
    loss, correct = 0.0, 0.0
    batches = run.feed.test_batches() if split == "test" else run.feed.validation_batches()
    for x, y, valid in batches:
        batch_loss, batch_correct = mesh_lib.fetch(bucket.programs.evaluate(bucket.state, x, y))
        loss = loss + batch_loss[:, valid].astype(np.float64).sum(1)
        correct = correct + batch_correct[:, valid].sum(1).astype(np.float64)
    return loss, correct


def _records(variant_list, grid_names, model_name, epoch, step, metrics, n_test, n_val=0):
    """The epoch's records; with a validation split (n_val examples) val_loss and val_error."""
    def error(correct, n):
        return 100.0 * (1.0 - round(float(correct)) / n)

    out = []
    for v in variant_list:
        i = v.id
        rec = v.record_fields(model_name, grid_names)
        rec.update(epoch=epoch, step=step)
        if metrics["failed"][i]:
            rec.update(status="failed", train_loss=None, test_loss=None, test_error=None,
                       failure=f"non-finite loss or parameters at step "
                               f"{int(metrics['failed_step'][i])}; variant frozen there")
            if n_val:
                rec.update(val_loss=None, val_error=None)
        else:
            rec.update(status="ok", failure=None,
                       train_loss=float(metrics["loss_sum"][i] / max(metrics["loss_count"][i], 1.0)),
                       test_loss=float(metrics["test_loss"][i] / n_test),
                       test_error=error(metrics["correct"][i], n_test))
            if n_val:
                rec.update(val_loss=float(metrics["val_loss"][i] / n_val),
                           val_error=error(metrics["val_correct"][i], n_val))
        out.append(_failed_if_not_finite(rec))
    return out


_METRIC_FIELDS = ("train_loss", "test_loss", "test_error", "val_loss", "val_error")


def _failed_if_not_finite(rec: dict) -> dict:
    """An "ok" record holds finite numbers only (JSON has no NaN): a metric that is not
    finite although training did not fail (an evaluation that overflowed) makes the
    record failed."""
    bad = [k for k in _METRIC_FIELDS if isinstance(rec.get(k), float) and not np.isfinite(rec[k])]
    if rec["status"] == "ok" and bad:
        rec.update({k: None for k in _METRIC_FIELDS if k in rec}, status="failed",
                   failure=f"non-finite {', '.join(bad)} in the evaluation after epoch "
                           f"{rec['epoch']}")
    return rec


def _metrics(run: Sweep, num_variants: int) -> dict:
    """Per-variant training sums and test results of all buckets, indexed by variant id."""
    metrics = {}
    for b in run.buckets:
        test_loss, correct = evaluate(run, b)
        sums = mesh_lib.fetch({"loss_sum": b.state.loss_sum, "loss_count": b.state.loss_count,
                                "failed": b.state.failed, "failed_step": b.state.failed_step})
        sums.update(test_loss=test_loss, correct=correct)
        if run.validation:
            sums["val_loss"], sums["val_correct"] = evaluate(run, b, "validation")
        ids = [v.id for v in b.variants]
        for key, values in sums.items():
            merged = metrics.setdefault(key, np.zeros(num_variants, values.dtype))
            merged[ids] = values[:len(ids)]
    return metrics


def _evaluate_and_record(run, variant_list, grid_names, model_name, step, epoch, store,
                         dumps, search=None) -> set[int]:
    """Evaluates every variant the sweep still trains, appends the epoch's records (then
    the epoch's `dumps`, if due), logs a one-line summary. At a rung of a live search, the
    search decides first (its records of the variants it prunes say so); returns the ids
    it pruned."""
    metrics = _metrics(run, len(variant_list))
    recs = _records(run.variants, grid_names, model_name, epoch, step, metrics, run.feed.num_test,
                    run.feed.num_val if run.validation else 0)
    pruned = search.decide(epoch, recs) if search else set()
    if store is not None:
        store.append(recs)
    if dumps.due(epoch):  # every process gathers the states, process 0 writes
        dumps.write(recs, run.variants, _host_states(run))
    ok = [r["test_error"] for r in recs if r["status"] != "failed"]
    summary = f"mean {np.mean(ok):.2f}% best {min(ok):.2f}%" if ok else "no variant left"
    failed = len(recs) - len(ok)
    _log(f"eval epoch {epoch}: test error {summary}" + (f", {failed} variants failed" if failed else ""))
    if pruned:
        _log(f"search rung at epoch {epoch}: {len(recs) - len(pruned)} variants keep training, "
             f"{len(pruned)} pruned ({search_live.SEARCH_FILE})")
    return pruned


def _open_data(data_spec):
    """(source, resident): a whole Dataset held on the devices, or an ImageNet stream.

    Either has num_train, num_test, mean, std, image_shape and name.
    """
    if data_lib.is_streaming(data_spec):
        return data_lib.open_stream(data_spec), False
    return data_lib.load(data_spec), True


def _host_states(run: Sweep) -> list:
    """[(variant ids, host state)] of every bucket: what a checkpoint keys by variant id."""
    return [([v.id for v in b.variants], mesh_lib.fetch(b.state)) for b in run.buckets]


def _save(run: Sweep, ckpts, step: int) -> None:
    """Checkpoints every bucket's real variants, keyed by variant id."""
    ckpts.save(step, _host_states(run))


def _restore(run: Sweep, saved: dict, step: int) -> None:
    """Fills every bucket's state from the checkpoint read at `step`, whatever layout
    wrote it."""
    restored = checkpoint_lib.place(saved, [(b.slot_ids, b.state) for b in run.buckets],
                                    f"checkpoint at step {step}")
    for b, state in zip(run.buckets, restored):
        b.state = mesh_lib.put(state, run.shard.variants)


def _results_path(workdir: str) -> str:
    return os.path.join(workdir, results.RESULTS_FILE)


def _on_process_0(action):
    """Runs `action` on process 0 only and returns its result (None elsewhere). In a
    multi-host run every process learns whether it failed, so a refusal there (a locked
    workdir, a corrupt results line) stops them all instead of leaving the others waiting
    at their first collective for a process that has gone."""
    error, value = None, None
    if jax.process_index() == 0:
        try:
            value = action()
        except Exception as e:  # re-raised below, after the others have been told
            error = e
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        if multihost_utils.broadcast_one_to_all(np.int32(error is not None)) and error is None:
            raise workdir_lib.WorkdirError("process 0 could not take the workdir; its message "
                                           "says why")
    if error is not None:
        raise error
    return value


def _own_workdir(workdir: str, config, data_id: dict, adopt_data: bool,
                 cleanup: contextlib.ExitStack):
    """Process 0 takes the workdir: its lock (released by `cleanup`), then, checked again
    under the lock (`claim`), config.json and the data fingerprint, and the results store
    (which refuses a corrupt line)."""
    workdir_lib.create(workdir)
    lock = cleanup.enter_context(workdir_lib.Lock(workdir))
    for note in (lock.notice,
                 workdir_lib.claim(workdir, config.to_dict(), data_id, adopt_data)):
        if note:
            _log(note)
    store = results.ResultsStore(workdir)
    if store.repaired_bytes:
        _log(f"repaired a torn last line of {store.path} ({store.repaired_bytes} bytes cut)")
    return store


def _check_before_loading(config, workdir: str, variant_list, adopt_data: bool):
    """(data spec, data summary, data fingerprint), once the workdir, the data and the
    memory estimate have passed every check that loads nothing."""
    # The workdir first: data.validate may download a data set or read every image header.
    workdir_lib.check_writable(workdir)
    workdir_lib.check_compatible(workdir, config.to_dict())
    data_spec = data_lib.validate(config.data)
    data_summary = summarize_data(data_spec)
    check_data(config, data_summary)
    check_memory(config, variant_list, data_summary)
    data_id = data_fingerprint(data_spec)
    workdir_lib.check_compatible(workdir, config.to_dict(), data_id, adopt_data)
    return data_spec, data_summary, data_id


def _plan_resume(ckpts, store, workdir: str, steps_per_epoch: int,
                 evaluation: periodic.Evaluation, search, variant_list) -> resume_lib.Resume:
    """`resume.plan` for this sweep, its notes logged. The variants of each epoch's records,
    and of a checkpoint, are those alive then: a live search prunes at its rungs, after
    their evaluation."""
    alive = (lambda at: [v.id for v in search.alive(at)]) if search else (
        lambda at: [v.id for v in variant_list])
    resume = resume_lib.plan(
        ckpts, store.keys if store else results.stored_keys(_results_path(workdir)),
        steps_per_epoch, evaluation.after, lambda epoch: alive(epoch * steps_per_epoch - 1),
        alive, _results_path(workdir))
    for note in resume.notes:
        _log(note)
    return resume


def train_and_evaluate(config, workdir: str, stop_after_steps: int | None = None,
                       adopt_data: bool = False) -> dict:
    """Trains every variant of `config`, appending records to WORKDIR/results.jsonl.

    Resumes from the workdir's newest readable checkpoint from which no record is lost,
    whatever device count, buckets or variant batch wrote it. `stop_after_steps` (tests,
    chaos runs) stops after that many steps of this invocation as a preemption would:
    checkpoint, exit. `adopt_data`: record the current data's fingerprint in a workdir
    that has checkpoints or records but no data.json (`workdir.check_compatible`). Returns
    a summary dict (variants, steps run, last step, whether it finished, the signal that
    stopped it or None).
    """
    config = validate_config(config)
    dumps = dumps_lib.Dumps(config, workdir, writer=jax.process_index() == 0)
    variant_list = variants_lib.build_variants(config)
    grid_names, _ = variants_lib.grid_combinations(config)
    data_spec, data_summary, data_id = _check_before_loading(config, workdir, variant_list,
                                                             adopt_data)
    source, resident = _open_data(data_spec)
    if data_summary.image_shape is None:  # a stream's image size is known once it is open
        check_data(config, dataclasses.replace(data_summary, image_shape=source.image_shape))
    train_cfg = config.train
    steps_per_epoch = source.num_train // train_cfg.batch_size
    total_steps = steps_per_epoch * train_cfg.epochs
    if not resident:
        feeds.check_process_shares(train_cfg.batch_size, train_cfg.eval_batch_size,
                                   source.num_test, config.mesh.devices)

    with contextlib.ExitStack() as cleanup:  # lock, feed and checkpoints closed however it ends
        if not resident:  # last of all: no decoding worker outlives the run
            cleanup.enter_context(stream_lib.workers_stopped())
        store = _on_process_0(lambda: _own_workdir(workdir, config, data_id, adopt_data,
                                                        cleanup))
        stop = _StopFlag()  # from here on, a signal stops the run cleanly at the next chance
        cleanup.enter_context(stop.installed())
        ckpts = checkpoint_lib.Checkpoints(workdir)
        cleanup.callback(ckpts.close)
        search = (search_live.LiveSearch(config.search, variant_list, grid_names, train_cfg.epochs,
                                         steps_per_epoch, workdir, jax.process_index() == 0)
                  if config.search.policy != "none" else None)
        evaluation = periodic.Evaluation(train_cfg.eval_every, train_cfg.epochs,
                                         search.is_rung if search else None)
        resume = _plan_resume(ckpts, store, workdir, steps_per_epoch, evaluation, search,
                              variant_list)
        step = resume.step
        # A live search resumes with the variants its recorded decisions left alive at `step`.
        run = build_sweep(config, search.alive(step) if search else variant_list, source,
                          resident, data_spec, steps_per_epoch)
        cleanup.callback(lambda: run.feed.close())  # the latest sweep's (a search rebuilds it)
        if resume.saved is not None:
            _restore(run, resume.saved, step)
            _log(f"resumed from checkpoint at step {step} (epoch {step / steps_per_epoch:.2f})")
        if resume.reevaluate:
            _evaluate_and_record(run, variant_list, grid_names, config.model.name, step,
                                 step // steps_per_epoch, store, dumps)

        bn = periodic.PreciseBN(train_cfg.precise_bn_samples, train_cfg.batch_size,
                                train_cfg.epochs, steps_per_epoch)
        checkpoint = periodic.Checkpoint(train_cfg.checkpoint_every_steps)
        stop_after = periodic.StopAfter(stop_after_steps)
        chunks = periodic.Chunks(train_cfg.steps_per_call, steps_per_epoch,
                                 (checkpoint, stop_after))
        progress = periodic.Progress(train_cfg.log_every_steps, train_cfg.epochs, steps_per_epoch,
                                     train_cfg.batch_size, search.progress if search else
                                     lambda step: f"{len(variant_list)} variants")
        steps_run, stop_here = 0, False  # stop_here: stop_after_steps reached
        stopping = _agreed_stop(stop)  # a signal came while it started
        while step < total_steps and not (stopping or stop_here):
            chunk = chunks.next(step, steps_run)
            train_steps(run, chunk.start, chunk.size)
            step, steps_run = chunk.end, chunk.steps_run
            progress.count(chunk, len(run.variants))
            if bn.is_due(chunk):
                precise_bn(run, bn.epoch_drawn(chunk), bn.num_batches, step)
            if progress.is_due(chunk):
                _wait(run)
                _log(progress.line(chunk))
            evaluated = evaluation.is_due(chunk)
            if evaluated:
                pruned = _evaluate_and_record(run, variant_list, grid_names, config.model.name,
                                              step, chunk.epoch, store, dumps, search)
                if pruned:  # the survivors go on in new buckets; the pruned cost nothing
                    run = build_sweep(config, [v for v in run.variants if v.id not in pruned],
                                      source, resident, data_spec, steps_per_epoch, previous=run)
            stop_here = stop_after.is_due(chunk)
            stopping = _agreed_stop(stop, run)
            if checkpoint.is_due(chunk, evaluated, stopping or stop_here):
                _save(run, ckpts, step)
        if (stopping or stop_here) and step < total_steps:  # saved at this step (or nothing new)
            why = f" by {signal.Signals(stopping).name}" if stopping else ""  # whichever process got it
            _log(f"stopped at step {step}{why}: checkpoint saved; rerun the same command to resume"
                 if steps_run else f"stopped before training from step {step}{why}: nothing "
                 "new to save; rerun the same command to resume")
    finished = step >= total_steps
    if finished:
        trained = (f"search kept {search.progress(step)}" if search else
                   f"{len(variant_list)} variants x {train_cfg.epochs} epochs")
        _log(f"done: {trained}; results in {store.path if store else workdir}")
    return {"variants": len(variant_list), "steps_run": steps_run, "step": step,
            "finished": finished, "stopped_by_signal": stopping or None,
            "variants_alive": len(run.variants),
            "model_epochs": (search.model_epochs(step) if search else
                             len(variant_list) * step / steps_per_epoch)}
