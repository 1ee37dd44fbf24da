"""Where a rerun resumes: the newest readable checkpoint from which no record is lost.

results.jsonl must hold a record of every variant at every epoch evaluated up to the
checkpoint a run resumes from (records are written before their checkpoint). Two things
break that, and each is recovered from where the kept checkpoints allow it:
- a damaged checkpoint (truncated, garbage or missing files): it is set aside and the
  older kept one is used;
- records lost after their checkpoint was written (results.jsonl deleted, a torn tail cut
  from a finished workdir, a corrupt line moved out): a checkpoint taken right after the
  evaluation that lacks them is evaluated again, or an older one is resumed from, whose
  training recomputes the epochs after it exactly (records already stored are not written
  twice). Newer checkpoints are then set aside (STEP.superseded): the run writes them
  again.
When no kept checkpoint can serve, the run refuses with one line saying what to do.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable, Iterable

from relgraph_jax import results
from relgraph_jax.train import checkpoint as checkpoint_lib
from relgraph_jax.train.workdir import WorkdirError


@dataclasses.dataclass
class Resume:
    step: int              # 0: from the start
    saved: dict | None     # the checkpoint read (checkpoint.by_id layout); None at step 0
    reevaluate: bool       # the epoch ending at `step` lacks records: evaluate it first
    notes: list[str]       # one line each, for the log


def plan(ckpts: checkpoint_lib.Checkpoints, stored: set, steps_per_epoch: int,
         evaluated: Callable[[int], bool], expected: Callable[[int], Iterable[int]],
         held: Callable[[int], Iterable[int]], results_path: str) -> Resume:
    """Chooses and reads the checkpoint to resume from.

    stored: the (variant, epoch) keys results.jsonl holds; evaluated(epoch): whether the
    trainer evaluates after that epoch; expected(epoch): the variant ids it evaluates then;
    held(step): the variant ids a checkpoint at that step holds.
    """
    steps = ckpts.steps()
    if not steps:
        return Resume(0, None, False, [])
    lacking = {}
    for epoch in range(1, steps[0] // steps_per_epoch + 1):
        if evaluated(epoch):
            ids = [i for i in expected(epoch) if (i, epoch) not in stored]
            if ids:
                lacking[epoch] = ids
    unreadable, too_new = [], []
    for step in steps:
        at, rest = divmod(step, steps_per_epoch)
        at = at if rest == 0 and at in lacking else None
        if (any(e * steps_per_epoch < step for e in lacking)
                or (at is not None and not set(lacking[at]) <= set(held(step)))):
            too_new.append(step)
            continue
        try:
            saved = ckpts.read(step)
        except checkpoint_lib.Unreadable as e:
            unreadable.append((step, str(e)))
            continue
        notes = [f"checkpoint at step {s} is unreadable ({why}); moved to "
                 f"{ckpts.set_aside(s, 'unreadable')}, resumed from step {step}"
                 for s, why in unreadable]
        moved = [ckpts.set_aside(s, "superseded") for s in too_new]
        again = f"evaluating epoch {at} again at step {step}" if at is not None else ""
        if too_new:
            notes.append(f"{_lacking(lacking, results_path)}, which the checkpoint at step "
                         f"{too_new[0]} is past: resumed from step {step}"
                         f"{' ' + again if again else ''} to compute them again (records "
                         f"already stored are not written twice; moved the newer "
                         f"checkpoint(s) to {', '.join(moved)})")
        elif again:
            notes.append(f"{_lacking(lacking, results_path)}: {again}, from its checkpoint")
        return Resume(step, saved, at is not None, notes)
    folder = ckpts.directory
    broken = "; ".join(f"step {s}: {why}" for s, why in unreadable)
    if too_new:
        raise WorkdirError(
            f"{_lacking(lacking, results_path)}, and no kept checkpoint is from before them "
            f"(steps {', '.join(map(str, too_new))}{'; unreadable ' + broken if broken else ''}),"
            f" so they cannot be computed again from what is kept: delete {folder} and rerun "
            f"the same command to train again from step 0 and recompute them (the records "
            f"{os.path.basename(results_path)} holds are kept, none is written twice)")
    raise WorkdirError(
        f"no checkpoint in {folder} is readable ({broken}): delete that folder and rerun "
        f"the same command to train again from step 0 (the records "
        f"{os.path.basename(results_path)} holds are kept, none is written twice)")


def _lacking(lacking: dict, results_path: str) -> str:
    count = sum(len(ids) for ids in lacking.values())
    epochs = sorted(lacking)
    ids = sorted({i for e in epochs for i in lacking[e]})
    return (f"{results_path} lacks {count} record(s) of epoch{'s' if len(epochs) > 1 else ''} "
            f"{results.name_some(epochs)} (variant {results.name_some(ids)})")

