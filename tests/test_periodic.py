"""The training loop's cadences (relgraph_jax/train/periodic.py), without a model: the
chunks and the steps each action acts at, against lists worked out by hand."""
import pytest

from relgraph_jax.train import periodic


def timeline(step, epochs, steps_per_epoch, steps_per_call, log_every=0, checkpoint_every=0,
             eval_every=1, bn_samples=0, batch_size=128, stop_after=None, rungs=()):
    """What the trainer's loop does from `step` on, as (what, step) pairs: its order of
    actions after each chunk, with the actions in place of the devices."""
    evaluation = periodic.Evaluation(eval_every, epochs, rungs.__contains__ if rungs else None)
    bn = periodic.PreciseBN(bn_samples, batch_size, epochs, steps_per_epoch)
    checkpoint, stop = periodic.Checkpoint(checkpoint_every), periodic.StopAfter(stop_after)
    chunks = periodic.Chunks(steps_per_call, steps_per_epoch, (checkpoint, stop))
    progress = periodic.Progress(log_every, epochs, steps_per_epoch, batch_size, str)
    events, steps_run, stopped = [], 0, False
    while step < epochs * steps_per_epoch and not stopped:
        chunk = chunks.next(step, steps_run)
        step, steps_run = chunk.end, chunk.steps_run
        events.append(("train", chunk.start, chunk.size))
        if bn.is_due(chunk):
            events.append(("precise_bn", step, bn.epoch_drawn(chunk), bn.num_batches))
        if progress.is_due(chunk):
            events.append(("log", step))
        evaluated = evaluation.is_due(chunk)
        if evaluated:
            events.append(("evaluate", step))
        stopped = stop.is_due(chunk)
        if checkpoint.is_due(chunk, evaluated, stopped):
            events.append(("save", step))
    return events


def test_chunks_end_at_each_epoch_end():
    """11-step epochs, 4 steps a call: 4, 4, 3 in each epoch; records and a checkpoint after
    each; the progress line at epoch ends only when log_every is longer."""
    assert timeline(0, epochs=2, steps_per_epoch=11, steps_per_call=4, log_every=100) == [
        ("train", 0, 4), ("train", 4, 4), ("train", 8, 3), ("log", 11), ("evaluate", 11),
        ("save", 11),
        ("train", 11, 4), ("train", 15, 4), ("train", 19, 3), ("log", 22), ("evaluate", 22),
        ("save", 22)]


def test_a_stopped_run_and_its_resumes():
    """3 epochs of 11 steps, 7 a call, a checkpoint every 6 steps, the progress line every 5
    steps of an invocation, evaluation every 2 epochs, precise BN from 256 samples; stopped
    after 14 steps, resumed for 3, then to the end. Worked out by hand:
    0-6 (checkpoint at 6), 6-11 (epoch end), 11-12 (checkpoint at 12), 12-14 (stop); the
    second invocation stops at 17; the third counts its steps from 0 again (lines at its
    steps 5 and 13: 22 and 30) and cuts at 18, 22 (epoch), 24 and 30 (checkpoints)."""
    settings = dict(epochs=3, steps_per_epoch=11, steps_per_call=7, log_every=5,
                    checkpoint_every=6, eval_every=2, bn_samples=256)
    assert timeline(0, stop_after=14, **settings) == [
        ("train", 0, 6), ("log", 6), ("save", 6),
        ("train", 6, 5), ("precise_bn", 11, 4, 2), ("log", 11),
        ("train", 11, 1), ("save", 12),
        ("train", 12, 2), ("save", 14)]
    assert timeline(14, stop_after=3, **settings) == [("train", 14, 3), ("save", 17)]
    assert timeline(17, **settings) == [
        ("train", 17, 1), ("save", 18),
        ("train", 18, 4), ("precise_bn", 22, 5, 2), ("log", 22), ("evaluate", 22), ("save", 22),
        ("train", 22, 2), ("save", 24),
        ("train", 24, 6), ("log", 30), ("save", 30),
        ("train", 30, 3), ("precise_bn", 33, 6, 2), ("log", 33), ("evaluate", 33),
        ("save", 33)]


def test_rungs_evaluate_between_the_evaluations_eval_every_asks_for():
    evaluation = periodic.Evaluation(every=2, epochs=5, is_rung=lambda epoch: epoch == 1)
    assert [e for e in range(1, 6) if evaluation.after(e)] == [1, 2, 4, 5]
    assert [e for e in range(1, 5) if periodic.Evaluation(3, 4).after(e)] == [3, 4]
    rung = timeline(0, epochs=3, steps_per_epoch=9, steps_per_call=4, eval_every=3, rungs={1})
    assert [e for e in rung if e[0] == "evaluate"] == [("evaluate", 9), ("evaluate", 27)]


def test_precise_bn_batches_are_at_most_an_epoch():
    bn = periodic.PreciseBN(samples=1000, batch_size=128, epochs=2, steps_per_epoch=5)
    assert bn.num_batches == 5
    assert periodic.PreciseBN(300, 128, 2, 5).num_batches == 2
    assert not periodic.PreciseBN(0, 128, 2, 5).is_due(periodic.Chunk(0, 5, 5, 5))


@pytest.mark.parametrize("step,steps_run,size", [
    (0, 0, 4),    # steps_per_call
    (8, 2, 1),    # the epoch ends at 9
    (9, 3, 1),    # the checkpoint every 5 steps comes at 10
    (11, 5, 2),   # stop_after 7 steps of this invocation
])
def test_a_chunk_is_the_smallest_of_its_limits(step, steps_run, size):
    chunks = periodic.Chunks(4, 9, (periodic.Checkpoint(5), periodic.StopAfter(7)))
    assert chunks.next(step, steps_run) == periodic.Chunk(step, step + size, steps_run + size, 9)


def test_the_progress_line_counts_the_variants_that_trained_each_chunk():
    """6 variants x 128 samples for 4 steps in 2 s: 1,536 model-samples/s; 23 steps left at
    768 samples each: 11.5 s. After a rung leaves 2 variants, 5 more steps in 2 more s."""
    times = iter([100.0, 102.0, 104.0])
    progress = periodic.Progress(3, 3, 9, 128, lambda step: f"variants at {step}",
                                 clock=lambda: next(times))
    first = periodic.Chunk(0, 4, 4, 9)
    progress.count(first, 6)
    assert progress.line(first) == ("epoch 0.44/3 | step 4/27 | variants at 4 | "
                                    "1,536 model-samples/s | ETA 0m11s")
    second = periodic.Chunk(4, 9, 9, 9)
    progress.count(second, 2)  # (3072 + 1280) / 4 s = 1088/s; 18 x 256 / 1088 = 4.2 s
    assert progress.line(second).endswith("| 1,088 model-samples/s | ETA 0m04s")


def test_eta_shows_hours_when_there_are_any():
    progress = periodic.Progress(0, 1000, 100, 1, str, clock=iter([0.0, 1.0]).__next__)
    chunk = periodic.Chunk(0, 1, 1, 100)
    progress.count(chunk, 1)  # 1 sample/s, 99,999 steps left
    assert progress.line(chunk).endswith("ETA 27h46m39s")
