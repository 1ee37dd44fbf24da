"""Chaos test: SIGKILL a small CPU sweep at random moments, resume, compare with a clean run.

  python benchmarks/chaos.py [--kills 6] [--seed 0] [--out /tmp/chaos]

Runs the sweep once uninterrupted (the reference), then again in a fresh workdir, killing
the process with SIGKILL at random times (at least one kill aimed at a checkpoint write:
the moment a temporary checkpoint directory appears) and restarting the same command each
time until it finishes. Every record (variant, epoch) of the killed run must equal the
reference exactly, none missing and none duplicated. The last line is the verdict; the
exit status is non-zero when any record differs, is missing or is duplicated.
"""
from __future__ import annotations

import argparse
import collections
import os
import random
import shutil
import signal
import subprocess
import sys
import time

from relgraph_jax import results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWEEP_FLAGS = [
    "--config=experiments/configs/quickstart.py",
    "--config.graphs=paper:n64_52/0;paper:n64_52/27;complete:n=64",
    "--config.seeds=2",
    "--config.train.epochs=3",
    "--config.train.steps_per_call=2",
    "--config.train.checkpoint_every_steps=4",
]


def _command(workdir):
    return [sys.executable, "-m", "experiments.main", *SWEEP_FLAGS, f"--workdir={workdir}"]


def _env():
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    return env


def _run_to_completion(workdir, log):
    return subprocess.run(_command(workdir), cwd=REPO, env=_env(), stdout=log,
                          stderr=subprocess.STDOUT).returncode


def _saving(workdir) -> bool:
    """True while Orbax is writing a checkpoint (a temporary step directory exists)."""
    ckpt = os.path.join(workdir, "checkpoints")
    return os.path.isdir(ckpt) and any("tmp" in name for name in os.listdir(ckpt))


def _run_and_kill(workdir, log, delay, aim_at_save):
    """Starts the sweep; SIGKILLs it after `delay` s (or at a save); True if it finished first."""
    proc = subprocess.Popen(_command(workdir), cwd=REPO, env=_env(), stdout=log,
                            stderr=subprocess.STDOUT)
    start = time.time()
    while proc.poll() is None:
        elapsed = time.time() - start
        if (aim_at_save and elapsed > 3 and _saving(workdir)) or (not aim_at_save and elapsed >= delay):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return False
        if aim_at_save and elapsed > 120:
            break
        time.sleep(0.005)
    return proc.wait() == 0


def _records(workdir):
    return results.read_records(os.path.join(workdir, results.RESULTS_FILE))


def compare(reference, candidate):
    """(records compared, differing, missing, duplicated) between two record lists."""
    ref = {(r["variant"], r["epoch"]): r for r in reference}
    counts = collections.Counter((r["variant"], r["epoch"]) for r in candidate)
    cand = {(r["variant"], r["epoch"]): r for r in candidate}
    duplicated = sum(c - 1 for c in counts.values())
    missing = len(set(ref) - set(cand))
    differing = sum(1 for k in set(ref) & set(cand) if ref[k] != cand[k])
    return len(ref), differing, missing + len(set(cand) - set(ref)), duplicated


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="/tmp/relgraph_chaos")
    args = parser.parse_args()
    if args.kills < 1:
        parser.error(f"--kills={args.kills}: need at least 1")
    rng = random.Random(args.seed)
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    ref_dir, chaos_dir = os.path.join(args.out, "reference"), os.path.join(args.out, "chaos")
    with open(os.path.join(args.out, "log.txt"), "w") as log:
        t0 = time.time()
        if _run_to_completion(ref_dir, log) != 0:
            sys.exit(f"reference run failed; see {args.out}/log.txt")
        clean_time = time.time() - t0
        print(f"reference run: {clean_time:.1f} s", flush=True)
        kills = starts = 0
        finished = False
        while kills < args.kills and not finished:
            aim = kills in (1, 3)  # two kills aimed at checkpoint writes
            delay = rng.uniform(2.0, max(3.0, clean_time * 0.8))
            starts += 1
            finished = _run_and_kill(chaos_dir, log, delay, aim)
            if not finished:
                kills += 1
                print(f"kill {kills}: {'during a checkpoint write' if aim else f'after {delay:.1f} s'}",
                      flush=True)
        while not finished:
            if starts > args.kills + 3:
                sys.exit(f"chaos run never finished; see {args.out}/log.txt")
            starts += 1
            finished = _run_to_completion(chaos_dir, log) == 0
    resumes = starts - 1  # every start after the first resumed from the workdir
    compared, differing, missing, duplicated = compare(_records(ref_dir), _records(chaos_dir))
    ok = differing == missing == duplicated == 0 and kills >= args.kills
    print(f"{'PASS' if ok else 'FAIL'}: kills={kills} resumes={resumes} records={compared} "
          f"differing={differing} missing={missing} duplicated={duplicated}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
