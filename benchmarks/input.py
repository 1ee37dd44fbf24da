"""Images per second of the ImageNet train transform: the old thread pool against grain.

  python benchmarks/input.py                 # 2,000 generated 500x375 JPEGs, workers 1 and 2
  python benchmarks/input.py --images=200    # a quick check that it runs
  python benchmarks/input.py --json

The folder is made once and kept in --cache (git-ignored): `--images` photo-like JPEGs
(smooth colour gradients and waves plus pixel noise, quality 90, about 100 KB each) of
500x375 in 10 class folders, the size and compression of a typical ImageNet photograph.
Every configuration makes the same train batches (read the file, decode, random-sized
crop to --size, flip, PCA lighting offset: data/stream.py's TrainExample, draws from
(seed, epoch, example)):

- thread pool: what the stream did before grain; each batch's examples mapped over a
  ThreadPoolExecutor of `workers` threads in this process, then stacked (this file keeps
  that baseline; the library no longer has it);
- grain: `ImageStream.train_batches` with `workers` worker processes.

The clock starts when the first batch is out and stops when the last one is (start-up
and close, where grain starts and stops its worker processes, are reported apart);
images/s counts the images after the first batch ("counting the close" adds the close to
the clock, as this benchmark did before). `--repeats` rounds each run every
configuration once. Per-core rate = images/s / workers; speed-up = images/s at N workers
/ at 1 and "vs thread pool" = grain's images/s / the thread pool's at the same workers
(equal worker counts: the per-core ratio), both taken within each round, medians over
rounds. When the first batch is out, a grain worker may be into its next chunk already
(the thread pool starts each batch afresh): at most one chunk of 32 per worker, 1.7 % of
the 1,920 images timed with one worker, 3.3 % with two. Run it on a quiet machine: other
jobs take cores from the workers.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from relgraph_jax import data
from relgraph_jax.data import imagefolder, stream as stream_lib
from relgraph_jax.data.testing import write_image_folder

CLASSES = tuple(f"n{i:08d}" for i in range(10))
SHAPE = (375, 500)  # height, width
DONE = ".complete"


def image_folder(cache: str, images: int) -> str:
    """The cached folder of `images` training JPEGs (made on first use, ~40 ms each)."""
    root = os.path.join(cache, f"photos_{images}_{SHAPE[1]}x{SHAPE[0]}_q90")
    if not os.path.exists(os.path.join(root, DONE)):
        per_class = -(-images // len(CLASSES))
        print(f"writing {per_class * len(CLASSES)} JPEGs of {SHAPE[1]}x{SHAPE[0]} to {root} "
              "(once)", flush=True)
        write_image_folder(root, classes=CLASSES, per_class=(per_class, 1), shape=SHAPE,
                           formats=("JPEG",), quality=90)
        open(os.path.join(root, DONE), "w").close()
    return root


def _timed(batches) -> tuple[float, float, int, float]:
    """(start-up s, steady s, images after the first batch, close s) of an iterator: the
    steady clock runs from the first batch to the last; the close (grain stops its worker
    processes when the iterator ends, 0.85 s here) is timed apart, as start-up is."""
    start = time.perf_counter()
    next(batches)
    ready = last = time.perf_counter()
    images = 0
    for batch in batches:
        images += int(np.prod(batch.shape[:-3]))
        last = time.perf_counter()
    return ready - start, last - ready, images, time.perf_counter() - last


def thread_pool(spec, size: int, batch: int, workers: int):
    """Batches of the train transform made by a pool of `workers` threads, in order."""
    classes = imagefolder.validate(spec)
    source = imagefolder.FolderSplit(spec, spec.train_split, classes)
    order = np.asarray(data.epoch_order(0, 0, len(source)))
    example = stream_lib.TrainExample(source, spec.name, order, (0,), batch, 0, size, True)
    with ThreadPoolExecutor(workers) as pool:
        for b in range(len(source) // batch):
            pairs = list(pool.map(example, range(b * batch, (b + 1) * batch)))
            yield np.stack([p[0] for p in pairs])


def grain_stream(spec, batch: int):
    stream = data.open_stream(spec)
    for out in stream.train_batches(batch, seeds=(0,), epoch=0):
        yield out.images


def measure(root: str, size: int, batch: int, workers_list, repeats: int) -> list[dict]:
    """One row per (method, workers). Each round runs every configuration once, in an
    order that rotates and reverses from round to round (each configuration follows a
    different one), so a drift in the machine's speed (on this shared VM a configuration
    varies by up to a quarter from minute to minute) hits all of them; the ratios (speed-up
    from 1 worker, grain against the thread pool) are taken within a round, then their
    median over rounds."""
    configs = [(method, workers) for method in ("thread pool", "grain") for workers in workers_list]
    runs = {config: [] for config in configs}
    for round_ in range(repeats):
        shift = round_ % len(configs)
        order = configs[shift:] + configs[:shift]
        for method, workers in (order[::-1] if round_ % 2 else order):
            spec = data.parse({"source": "imagefolder", "path": root, "image_size": size,
                               "workers": workers})
            batches = (thread_pool(spec, size, batch, workers) if method == "thread pool"
                       else grain_stream(spec, batch))
            startup, seconds, images, close = _timed(batches)
            runs[method, workers].append({"startup": startup, "rate": images / seconds,
                                          "images": images, "close": close,
                                          "rate_with_close": images / (seconds + close)})
            print(json.dumps({"round": round_, "method": method, "workers": workers,
                              "images_per_s": round(images / seconds, 1)}), flush=True)

    def median(values):
        return float(np.median(list(values)))

    rows = []
    for method, workers in configs:
        got, one = runs[method, workers], runs[method, 1]
        pool = runs["thread pool", workers]
        rate = median(g["rate"] for g in got)
        rows.append({"method": method, "workers": workers, "images": got[0]["images"],
                     "startup_s": round(median(g["startup"] for g in got), 2),
                     "close_s": round(median(g["close"] for g in got), 2),
                     "images_per_s": round(rate, 1), "per_core": round(rate / workers, 1),
                     "with_close": round(median(g["rate_with_close"] for g in got), 1),
                     "speedup_vs_1": round(median(g["rate"] / o["rate"]
                                                  for g, o in zip(got, one)), 3),
                     "vs_thread_pool": round(median(g["rate"] / p["rate"]
                                                    for g, p in zip(got, pool)), 3),
                     "rounds": [round(g["rate"], 1) for g in got]})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| method | workers | images | start-up s | close s | images/s (median) | per core "
             "| speed-up vs 1 | vs thread pool | images/s counting the close | images/s of "
             "each round |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['workers']} | {r['images']} | {r['startup_s']} | "
              f"{r['close_s']} | {r['images_per_s']} | {r['per_core']} | {r['speedup_vs_1']} | "
              f"{r['vs_thread_pool']} | {r['with_close']} | "
              f"{', '.join(map(str, r['rounds']))} |" for r in rows]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000, help="training JPEGs (>= 2 batches)")
    parser.add_argument("--size", type=int, default=224, help="crop size")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", default="1,2", help="comma-separated; must include 1")
    parser.add_argument("--repeats", type=int, default=5, help="rounds; medians are reported")
    parser.add_argument("--cache", default=os.path.join(os.path.dirname(__file__), ".cache"))
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    args = parser.parse_args()
    workers_list = [int(w) for w in args.workers.split(",")]
    if 1 not in workers_list or min(workers_list) < 1:
        parser.error(f"--workers={args.workers}: positive counts including 1 (the speed-up base)")
    if args.repeats < 1:
        parser.error(f"--repeats={args.repeats}: at least 1")
    if args.images < 2 * args.batch:
        parser.error(f"--images={args.images} must be at least two batches of --batch={args.batch}")

    root = image_folder(args.cache, args.images)
    load_before = os.getloadavg()
    rows = measure(root, args.size, args.batch, workers_list, args.repeats)
    result = {"folder": root, "cores": len(os.sched_getaffinity(0)), "size": args.size,
              "batch": args.batch, "load_before": [round(x, 2) for x in load_before],
              "load_after": [round(x, 2) for x in os.getloadavg()], "rows": rows}
    print(json.dumps(result) if args.json else table(rows) +
          f"\n\ncores {result['cores']}, load average {result['load_before']} -> "
          f"{result['load_after']}")


if __name__ == "__main__":
    main()
