"""When the training loop acts. It trains a chunk of steps, then asks each action whether
it is time (as clu's periodic actions and big_vision's `itstime` do): the progress line,
precise BatchNorm, the evaluation (a live search decides at its rungs) and the checkpoint.
`Chunks` cuts a chunk where the epoch ends or an action or the stop must come, so that
no moment to act falls inside one.

Only steps are counted here. What an action does touches the devices and stays in the
trainer, so every cadence is tested without a model (tests/test_periodic.py).
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable


def due(before: int, after: int, every: int) -> bool:
    """Whether a multiple of `every` (0: never) lies in (before, after]: is it time to act
    after the steps from `before` to `after`?"""
    return bool(every) and after // every > before // every


@dataclasses.dataclass(frozen=True)
class Chunk:
    """The steps start+1..end, trained by one call; `steps_run`: the steps this invocation
    has trained, these included."""
    start: int
    end: int
    steps_run: int
    steps_per_epoch: int

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def epoch(self) -> int:
        """The epoch it reaches (the one it completes when `ends_epoch`)."""
        return self.end // self.steps_per_epoch

    @property
    def ends_epoch(self) -> bool:
        return self.end % self.steps_per_epoch == 0


class Progress:
    """The progress line (epoch, step, variants, throughput, ETA): every `every_steps`
    steps of this invocation (0: never) and at every epoch's end. Throughput counts from
    this object's creation, so make it right before the first chunk. `variants(step)`
    says how many variants train at that step."""

    def __init__(self, every_steps: int, epochs: int, steps_per_epoch: int, batch_size: int,
                 variants: Callable[[int], str], clock: Callable[[], float] = time.time):
        self.every_steps, self.epochs, self.steps_per_epoch = every_steps, epochs, steps_per_epoch
        self.total_steps = epochs * steps_per_epoch
        self.batch_size, self.variants, self.clock = batch_size, variants, clock
        self.start = clock()
        self.samples = 0
        self.samples_per_step = 0

    def count(self, chunk: Chunk, num_variants: int) -> None:
        """Counts a chunk's model-samples; `num_variants` trained it (a search prunes)."""
        self.samples_per_step = self.batch_size * num_variants
        self.samples += chunk.size * self.samples_per_step

    def is_due(self, chunk: Chunk) -> bool:
        return chunk.ends_epoch or due(chunk.steps_run - chunk.size, chunk.steps_run,
                                       self.every_steps)

    def line(self, chunk: Chunk) -> str:
        """The line after `chunk`; its rate is right once the chunk has finished."""
        rate = self.samples / max(self.clock() - self.start, 1e-9)
        eta = (self.total_steps - chunk.end) * self.samples_per_step / max(rate, 1e-9)
        return (f"epoch {chunk.end / self.steps_per_epoch:.2f}/{self.epochs} | step "
                f"{chunk.end}/{self.total_steps} | {self.variants(chunk.end)} | "
                f"{rate:,.0f} model-samples/s | ETA {_format_eta(eta)}")


def _format_eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


@dataclasses.dataclass(frozen=True)
class PreciseBN:
    """Precise BatchNorm at every epoch's end (`samples` 0: never), from `samples` //
    batch_size batches (an epoch's at most). The batches come from an epoch training never
    reaches (`epoch_drawn`): drawn as training batches are, but not the same ones, and the
    same again on a resume."""
    samples: int
    batch_size: int
    epochs: int
    steps_per_epoch: int

    def is_due(self, chunk: Chunk) -> bool:
        return bool(self.samples) and chunk.ends_epoch

    @property
    def num_batches(self) -> int:
        return min(self.samples // self.batch_size, self.steps_per_epoch)

    def epoch_drawn(self, chunk: Chunk) -> int:
        return self.epochs + chunk.epoch


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """Evaluation and records after every `every` epochs, after the last, and at a live
    search's rungs (`is_rung`), where the search prunes after the evaluation."""
    every: int
    epochs: int
    is_rung: Callable[[int], bool] | None = None

    def after(self, epoch: int) -> bool:
        """Whether the sweep evaluates after `epoch` (what a resume checks records of)."""
        return (due(epoch - 1, epoch, self.every) or epoch == self.epochs
                or (self.is_rung is not None and self.is_rung(epoch)))

    def is_due(self, chunk: Chunk) -> bool:
        return chunk.ends_epoch and self.after(chunk.epoch)


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A checkpoint every `every_steps` steps (0: only these two), after every evaluation
    (its records are written first) and when the run stops."""
    every_steps: int

    def is_due(self, chunk: Chunk, evaluated: bool, stops: bool) -> bool:
        return evaluated or stops or due(chunk.start, chunk.end, self.every_steps)

    def steps_left(self, step: int, steps_run: int) -> int | None:
        return self.every_steps - step % self.every_steps if self.every_steps else None


@dataclasses.dataclass(frozen=True)
class StopAfter:
    """Stops after `steps` steps of this invocation (None: never) as a preemption would:
    checkpoint, exit (tests, chaos runs)."""
    steps: int | None

    def is_due(self, chunk: Chunk) -> bool:
        return self.steps is not None and chunk.steps_run >= self.steps

    def steps_left(self, step: int, steps_run: int) -> int | None:
        return None if self.steps is None else self.steps - steps_run


@dataclasses.dataclass(frozen=True)
class Chunks:
    """How many steps one call trains: `steps_per_call`, cut at the epoch's end (where
    precise BN, the progress line and evaluations come) and where one of `limits`
    (`steps_left`: a checkpoint's cadence, the stop) must act."""
    steps_per_call: int
    steps_per_epoch: int
    limits: tuple = ()

    def next(self, step: int, steps_run: int) -> Chunk:
        """The chunk after `step`, `steps_run` steps into this invocation."""
        left = [limit.steps_left(step, steps_run) for limit in self.limits]
        size = min([self.steps_per_call, self.steps_per_epoch - step % self.steps_per_epoch]
                   + [n for n in left if n is not None])
        return Chunk(step, step + size, steps_run + size, self.steps_per_epoch)
