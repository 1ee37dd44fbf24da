"""Stop latency: seconds from SIGTERM to the trainer's exit, against the bound.

  python benchmarks/stop_latency.py --cifar=data_cache/cifar10_jpeg.npz [--trials=3]
      [--steps_per_call=50,10] [--out=/tmp/relgraph_stop]

The trainer reads its stop flag once the chunk in flight has finished, before it
dispatches the next, so a SIGTERM costs at most the rest of that chunk, then the
checkpoint and the exit: bound = one chunk + the checkpoint. Two sweeps, each started
fresh per trial and sent SIGTERM at a random moment of a chunk once it trains:
- mlp: the paper's MLP on CIFAR-10 (an arrays .npz such as the decoded JPEG copy, given by
  --cifar) with its best graph paper:n64_3942/3552, one seed, batch 128; one row per
  --steps_per_call (the chunk length, which sets the bound);
- stream: a streamed image-folder sweep (2 decoding workers, 16x16 crops, 2 seeds): its
  stop also closes the pipelines and ends the workers.
The chunk time comes from the time between the run's first two progress lines, which are
CHUNKS_PER_LOG chunks apart.
Prints a markdown table; --json prints the rows.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from benchmarks import chaos  # noqa: E402  (the streamed sweep)

_PROGRESS = re.compile(r"model-samples/s \| ETA")
# A progress line every 4 chunks: as with the configs' defaults (100 steps of logging, 50
# per call), most chunks end without one, whose wait for the device would hide a flag read
# too early.
CHUNKS_PER_LOG = 4


def _trial(command: list[str], workdir: str, env: dict, rng: random.Random) -> dict:
    """One run, started fresh: the chunk time is the time between its first two progress
    lines over CHUNKS_PER_LOG, then SIGTERM comes at a random moment of the next
    CHUNKS_PER_LOG chunks."""
    shutil.rmtree(workdir, ignore_errors=True)
    proc = subprocess.Popen(command + [f"--workdir={workdir}"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in proc.stdout:
        if _PROGRESS.search(line):
            seen.append(time.perf_counter())
            if len(seen) == 2:
                break
    if len(seen) < 2:
        proc.wait()
        raise RuntimeError(f"{command}: fewer than two progress lines (exit {proc.returncode})")
    chunk_s = (seen[1] - seen[0]) / CHUNKS_PER_LOG
    time.sleep(rng.uniform(0.0, CHUNKS_PER_LOG * chunk_s))
    sent = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    tail = proc.communicate()[0]
    seconds = time.perf_counter() - sent
    stopped = re.search(r"stopped at step (\d+) by SIGTERM", tail)
    return {"exit": proc.returncode, "latency_s": seconds, "chunk_s": chunk_s,
            "stopped_at": int(stopped.group(1)) if stopped else None}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cifar", required=True, help="CIFAR-10 as an arrays .npz")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--steps_per_call", default="50,10")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="/tmp/relgraph_stop")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.cifar):
        parser.error(f"--cifar {args.cifar!r} not found: decode the JPEG copy with "
                     "python -m relgraph_jax.data.prepare_cifar10")
    os.makedirs(args.out, exist_ok=True)
    rng = random.Random(args.seed)
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
    rows = []
    for steps in (int(s) for s in args.steps_per_call.split(",")):
        for t in range(args.trials):
            workdir = os.path.join(args.out, f"mlp_{steps}_{t}")
            command = [sys.executable, "-m", "experiments.main",
                       "--config=experiments/configs/mlp_cifar10.py:jpeg",
                       f"--config.data.path={os.path.abspath(args.cifar)}",
                       "--config.graphs=paper:n64_3942/3552", "--config.seeds=1",
                       f"--config.train.steps_per_call={steps}",
                       f"--config.train.log_every_steps={CHUNKS_PER_LOG * steps}"]
            rows.append({"sweep": "mlp", "steps_per_call": steps,
                         **_trial(command, workdir, env, rng)})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    config = chaos.stream_sweep(args.out, per_class=(40, 4))
    for t in range(args.trials):
        command = [sys.executable, "-m", "experiments.main", f"--config={config}",
                   f"--config.train.log_every_steps={CHUNKS_PER_LOG * 2}"]
        rows.append({"sweep": "stream", "steps_per_call": 2,
                     **_trial(command, os.path.join(args.out, f"stream_{t}"), env, rng)})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(rows))
        return 0
    print("| sweep | steps per call | chunk (s) | SIGTERM -> exit (s) | exit | stopped at step |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['sweep']} | {r['steps_per_call']} | {r['chunk_s']:.1f} | "
              f"{r['latency_s']:.1f} | {r['exit']} | {r['stopped_at']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
