"""Chaos test: break a small CPU sweep in every way a user or a machine can, resume, and
compare every record with an uninterrupted run.

  python benchmarks/chaos.py [--kind all|KIND,KIND] [--kills 10] [--seed 0] [--out DIR]

The sweep (3 graphs x 2 seeds, an MLP on the digits saved as an .npz, 3 epochs, a
checkpoint every 4 steps, one width bucket, 4 fake CPU devices) runs once uninterrupted:
the reference.
Then each fault kind below gets its own workdir, where the sweep is broken and rerun with
the same command until it finishes; every (variant, epoch) record must then equal the
reference's exactly, none lost and none duplicated. Each kind also checks what the program
said (exit status and its one line). Fault kinds (`FAULTS`, one entry each):

  kill               SIGKILL at random moments and during checkpoint writes (--kills)
  concurrent         a second run on the workdir, started 0-3 s after the first: one trains,
                     the other is refused (exit 2, "in use by another run")
  disk_full_records  the disk fills before an epoch's records: exit 1 with one line, the
                     records file cut back whole, no checkpoint after it
  disk_full_ckpt     the disk fills during a checkpoint write: exit 1 with one line
  corrupt_ckpt       SIGTERM (exit 143) or Ctrl-C (130), then the newest checkpoint is
                     damaged (truncated data, garbage metadata, a missing item), also in a
                     finished workdir: the rerun says so and resumes from the older one
  data_changed       SIGTERM, then the .npz changes: the rerun is refused (exit 2) and
                     writes nothing; with the data restored it finishes
  search             a live search (search.policy=halving, 3 -> 2 -> 1 graphs) killed as
                     `kill` kills: its records and search.jsonl must equal an uninterrupted
                     search's byte for byte
  worker_startup     a streamed image-folder sweep (2 decoding workers) stopped while its
                     workers start: SIGTERM (exit 143), SIGTERM twice, SIGKILL; after each,
                     no process the trainer started may outlive it by more than 2 s, and
                     /dev/shm holds nothing new; compared with its own uninterrupted run
  import_kill        experiments.import_graph2nn --task all killed (SIGKILL) part-way, a
                     few times; the rerun completes the import, and every task's records
                     equal an uninterrupted import's

A full disk is simulated with RLIMIT_FSIZE set on the running process (prlimit): every
write that would make a file larger than the limit fails with EFBIG ("File too large")
after writing what fits, which is what a full disk (ENOSPC) does to the program: a short
write, then an error. No root, no LD_PRELOAD; the limit is per file, not a disk's total,
and the program treats both errors alike. The limit is put at the records file's size
plus 100 bytes, so the next records append (checkpoints off in that run, so it comes first)
or the next checkpoint file hits it.

The table at the end (markdown) has, per kind: runs started, records compared, lost,
duplicated, differing, and what happened. The last line is the verdict; the exit status
is non-zero when a record differs, is lost or duplicated, or the program said the wrong
thing. A new kind is one function and one FAULTS entry.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from relgraph_jax import results  # noqa: E402
from relgraph_jax.search import live  # noqa: E402

SWEEP_FLAGS = [
    "--config=experiments/configs/quickstart.py",
    "--config.graphs=paper:n64_52/0;paper:n64_52/27;complete:n=64",
    "--config.seeds=2",
    "--config.train.epochs=3",
    "--config.train.steps_per_call=2",
    "--config.train.checkpoint_every_steps=4",
    "--config.train.width_buckets=1",  # one program to compile: restarts are quick
    "--config.data.source=arrays",
    "--config.data.name=digits",
]
# The search kind's sweep: the same, searching on 300 held-out digits (rungs at epochs 1, 2).
SEARCH_FLAGS = ("--config.data.validation_size=300", "--config.search.policy=halving",
                "--config.search.eta=2", "--config.search.first_rung=1")
REFUSED, FAILED = 2, 1  # exit statuses of experiments.main (its docstring)


@dataclasses.dataclass
class Outcome:
    """What one fault kind did: processes started, the workdirs whose records are compared
    with the reference, expectations that failed, and a few words on what happened.
    `reference`: the workdir of the kind's own uninterrupted run (None: the clean sweep);
    a `workdirs` entry (workdir, reference) names its own."""
    runs: int = 0
    workdirs: list = dataclasses.field(default_factory=list)
    problems: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)
    reference: str | None = None


class Chaos:
    """Starts the sweep's processes, each logged to its own file under --out; `flags`
    are added to every command (another sweep, e.g. SEARCH_FLAGS)."""

    def __init__(self, out: str, data: str, rng: random.Random, clean_time: float,
                 flags: tuple = ()):
        self.out, self.data, self.rng, self.clean_time = out, data, rng, clean_time
        self.flags = flags
        self._count = 0

    def command(self, workdir, *extra):
        return [sys.executable, "-m", "experiments.main", *SWEEP_FLAGS, *self.flags,
                f"--config.data.path={self.data}", f"--workdir={workdir}", *extra]

    def start(self, outcome: Outcome, workdir: str, *extra) -> subprocess.Popen:
        """Starts the sweep; its output goes to WORKDIR.runN.log through a pipe (a full
        disk simulated on the process would cap a log file it wrote itself)."""
        self._count += 1
        outcome.runs += 1
        env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1",
                   XLA_FLAGS="--xla_force_host_platform_device_count=4")
        # Ctrl-C as in a terminal, even when this script runs in the background (SIG_IGN).
        proc = subprocess.Popen(self.command(workdir, *extra), cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        proc.log_path = f"{workdir}.run{self._count}.log"
        proc.copier = threading.Thread(target=_copy, args=(proc.stdout, proc.log_path))
        proc.copier.start()
        return proc

    def finish(self, outcome: Outcome, workdir: str, *extra) -> tuple[int, str]:
        """Runs the sweep until it exits; (exit status, its output)."""
        proc = self.start(outcome, workdir, *extra)
        proc.wait()
        return proc.returncode, output(proc)

    def resume_to_end(self, outcome: Outcome, workdir: str) -> None:
        rc, text = self.finish(outcome, workdir)
        expect(outcome, rc == 0 and "done:" in text, f"rerun did not finish (exit {rc}): "
               f"{last_line(text)}")


def _copy(pipe, path: str) -> None:
    with open(path, "wb") as log:
        for line in pipe:
            log.write(line)
            log.flush()


def output(proc) -> str:
    """All a finished process printed."""
    proc.copier.join()
    with open(proc.log_path) as f:
        return f.read()


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def expect(outcome: Outcome, ok: bool, problem: str) -> None:
    if not ok:
        outcome.problems.append(problem)


def wait_until(proc, condition, timeout: float = 300.0) -> bool:
    """Polls until condition() holds (True) or the process exits or time runs out (False)."""
    start = time.time()
    while proc.poll() is None and time.time() - start < timeout:
        if condition():
            return True
        time.sleep(0.005)
    return False


def _saving(workdir) -> bool:
    """True while Orbax is writing a checkpoint (a temporary step directory exists)."""
    ckpt = os.path.join(workdir, "checkpoints")
    return os.path.isdir(ckpt) and any("tmp" in name for name in os.listdir(ckpt))


def _steps(workdir) -> list[int]:
    ckpt = os.path.join(workdir, "checkpoints")
    return sorted(int(n) for n in os.listdir(ckpt) if n.isdigit()) if os.path.isdir(ckpt) else []


def _results_size(workdir) -> int:
    path = os.path.join(workdir, results.RESULTS_FILE)
    return os.path.getsize(path) if os.path.exists(path) else 0


def _one_line_failure(outcome: Outcome, rc: int, text: str, expected_rc: int, phrase: str):
    """The run stopped with `expected_rc` and said `phrase` in its one last line, with no
    traceback or Orbax/asyncio noise anywhere."""
    noisy = [line for line in text.splitlines()
             if line.startswith(("Traceback", "ERROR:", "E1", "W1", "Task exception"))]
    expect(outcome, rc == expected_rc and phrase in last_line(text) and not noisy,
           f"expected exit {expected_rc} and one line with {phrase!r}, got exit {rc}: "
           f"{last_line(text)[:200]!r} ({len(noisy)} noise lines)")


# ----------------------------------------------------------------------------- the faults
def kill(chaos: Chaos, workdir: str, kills: int) -> Outcome:
    """SIGKILL, in turn: at a random moment, the moment a checkpoint write begins, and
    right after an epoch's records were appended (before their checkpoint). A workdir
    that finishes first is compared and the kills go on in a fresh one."""
    outcome = Outcome()
    aims = collections.Counter()
    where = None
    while sum(aims.values()) < kills:
        if where is None:
            where = f"{workdir}{len(outcome.workdirs)}"
            outcome.workdirs.append(where)
        aim = ("random", "checkpoint write", "records appended")[sum(aims.values()) % 3]
        delay = chaos.rng.uniform(2.0, max(3.0, chaos.clean_time * 0.6))
        size = _results_size(where)
        proc = chaos.start(outcome, where)
        start = time.time()
        moment = {"random": lambda: time.time() - start >= delay,
                  "checkpoint write": lambda: time.time() - start > 3 and _saving(where),
                  "records appended": lambda: _results_size(where) > size}[aim]
        if wait_until(proc, moment):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            aims[aim] += 1
        elif proc.wait() == 0:
            where = None  # finished before the kill
        else:
            outcome.problems.append(f"a run exited {proc.returncode}: {last_line(output(proc))}")
            break
    if where is not None:
        chaos.resume_to_end(outcome, where)
    outcome.notes.append(f"{sum(aims.values())} SIGKILLs: " + ", ".join(
        f"{n} {aim}" for aim, n in aims.items()))
    return outcome


def concurrent(chaos: Chaos, workdir: str, kills: int) -> Outcome:
    """Two runs on one fresh workdir, the second 0-3 s after the first; twice."""
    outcome = Outcome()
    for pair in range(2):
        where = f"{workdir}{pair}"
        first = chaos.start(outcome, where)
        time.sleep(chaos.rng.uniform(0.0, 3.0))
        second = chaos.start(outcome, where)
        codes = sorted(p.wait() for p in (first, second))
        refused = [output(p) for p in (first, second) if p.returncode == REFUSED]
        expect(outcome, codes == [0, REFUSED] and "is in use by another run" in last_line(
            refused[0] if refused else ""), f"pair {pair}: exit codes {codes}")
        outcome.workdirs.append(where)
    outcome.notes.append("each pair: one finished, the other refused (exit 2, \"in use by "
                         "another run (PID ...)\")")
    return outcome


def _fill_disk(chaos: Chaos, outcome: Outcome, workdir: str, extra, ready, phrase: str):
    """Starts a run and, once `ready()`, caps its file size at the records file's + 100
    bytes: the next large write fails as on a full disk."""
    proc = chaos.start(outcome, workdir, *extra)
    wait_until(proc, ready)
    if proc.poll() is None:
        limit = _results_size(workdir) + 100
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    proc.wait()
    text = output(proc)
    _one_line_failure(outcome, proc.returncode, text, FAILED, phrase)
    path = os.path.join(workdir, results.RESULTS_FILE)
    with open(path, "rb") as f:
        expect(outcome, f.read().endswith(b"\n"), "a torn records line was left behind")
    chaos.resume_to_end(outcome, workdir)


def disk_full_records(chaos: Chaos, workdir: str, kills: int) -> Outcome:
    """The records append is the first write to hit the full disk: the disk fills after
    epoch 1's checkpoint, in a run that checkpoints only after evaluations."""
    outcome = Outcome(workdirs=[workdir])
    _fill_disk(chaos, outcome, workdir, ["--config.train.checkpoint_every_steps=0"],
               lambda: _steps(workdir), "could not append")
    outcome.notes.append("exit 1: \"could not append N line(s) to .../results.jsonl (File too "
                         "large); it is back to its B bytes ...\"")
    return outcome


def disk_full_ckpt(chaos: Chaos, workdir: str, kills: int) -> Outcome:
    """The disk fills after epoch 1's records: the next checkpoint write hits it."""
    outcome = Outcome(workdirs=[workdir])
    _fill_disk(chaos, outcome, workdir, [], lambda: _results_size(workdir) > 0,
               "could not write the checkpoint")
    outcome.notes.append("exit 1: \"could not write the checkpoint at step N ... (File too "
                         "large; ...)\"")
    return outcome


def _truncate_data(step_dir):
    files = [os.path.join(r, f) for r, _, names in os.walk(step_dir) for f in names]
    biggest = max(files, key=os.path.getsize)
    with open(biggest, "r+b") as f:
        f.truncate(os.path.getsize(biggest) // 3)


def _garbage_metadata(step_dir):
    with open(os.path.join(step_dir, "variants", "_METADATA"), "wb") as f:
        f.write(b"\x00garbage\xff" * 50)


def _missing_item(step_dir):
    shutil.rmtree(os.path.join(step_dir, "variants"))


def corrupt_ckpt(chaos: Chaos, workdir: str, kills: int) -> Outcome:
    """Stopped by SIGTERM or Ctrl-C after its second checkpoint, or finished; then its
    newest checkpoint is damaged in one of three ways."""
    outcome = Outcome()
    cases = [(signal.SIGTERM, _truncate_data), (signal.SIGINT, _garbage_metadata),
             (None, _missing_item)]
    for k, (sig, damage) in enumerate(cases):
        where = f"{workdir}{k}"
        if sig is None:
            rc, _ = chaos.finish(outcome, where)
            expect(outcome, rc == 0, f"case {k}: the clean run exited {rc}")
        else:
            proc = chaos.start(outcome, where)
            wait_until(proc, lambda: len(_steps(where)) >= 2)
            proc.send_signal(sig)
            proc.wait()
            expect(outcome, proc.returncode == 128 + sig,
                   f"case {k}: {sig.name} gave exit {proc.returncode}, not {128 + sig}")
        newest = _steps(where)[-1]
        damage(os.path.join(where, "checkpoints", str(newest)))
        rc, text = chaos.finish(outcome, where)
        expect(outcome, rc == 0 and f"checkpoint at step {newest} is unreadable" in text,
               f"case {k}: the rerun did not fall back (exit {rc}): {last_line(text)[:200]!r}")
        outcome.workdirs.append(where)
    outcome.notes.append("SIGTERM -> 143, Ctrl-C -> 130; rerun: \"checkpoint at step N is "
                         "unreadable (...); moved to ..., resumed from step M\"")
    return outcome


def data_changed(chaos: Chaos, workdir: str, kills: int) -> Outcome:
    outcome = Outcome(workdirs=[workdir])
    proc = chaos.start(outcome, workdir)
    wait_until(proc, lambda: len(_steps(workdir)) >= 1)
    proc.send_signal(signal.SIGTERM)
    proc.wait()
    original = chaos.data + ".original"
    shutil.copy(chaos.data, original)
    with np.load(original) as arrays:
        changed = dict(arrays)
    changed["y_train"] = changed["y_train"].copy()
    changed["y_train"][0] = (changed["y_train"][0] + 1) % 10  # one label differs
    np.savez(chaos.data, **changed)
    before = _listing(workdir)
    rc, text = chaos.finish(outcome, workdir)
    _one_line_failure(outcome, rc, text, REFUSED, "the data changed since workdir")
    expect(outcome, _listing(workdir) == before, "the refused run changed the workdir")
    os.replace(original, chaos.data)
    chaos.resume_to_end(outcome, workdir)
    outcome.notes.append("refused (exit 2): \"the data changed since workdir ... was made "
                         "(blake2b: ...)\", nothing written; finished with the data restored")
    return outcome


def search(chaos: Chaos, workdir: str, kills: int) -> Outcome:
    """The `kill` faults on a live search, compared with an uninterrupted search: the same
    records and the same search.jsonl, byte for byte (decisions made once, as recorded)."""
    searching = Chaos(chaos.out, chaos.data, chaos.rng, chaos.clean_time, SEARCH_FLAGS)
    reference = f"{workdir}_reference"
    clean = Outcome()
    rc, text = searching.finish(clean, reference)
    outcome = kill(searching, workdir, kills)
    outcome.runs += clean.runs
    outcome.reference = reference
    expect(outcome, rc == 0, f"the uninterrupted search exited {rc}: {last_line(text)}")
    for where in outcome.workdirs:
        for name in (results.RESULTS_FILE, live.SEARCH_FILE):
            expect(outcome, _bytes(where, name) == _bytes(reference, name),
                   f"{where}: {name} differs from the uninterrupted search's")
    outcome.notes.append(f"{len(live.read_decisions(reference))} rungs; results.jsonl and "
                         "search.jsonl byte-identical to the uninterrupted search's")
    return outcome


def _bytes(workdir, name) -> bytes | None:
    path = os.path.join(workdir, name)
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        return f.read()


def _listing(workdir) -> dict:
    """Every file under the workdir with its size and modification time."""
    return {os.path.join(r, f): (os.stat(os.path.join(r, f)).st_size,
                                 os.stat(os.path.join(r, f)).st_mtime_ns)
            for r, _, names in os.walk(workdir) for f in names}


# The streamed sweep of worker_startup: an 8-node MLP on 16x16 crops of a small image
# folder, 2 seeds, 2 epochs of 6 steps, 2 decoding workers.
STREAM_CONFIG = """
import ml_collections
from experiments.configs import common


def get_config():
    config = common.experiment(
        "mlp", graphs="complete:n=8;ws:n=8,k=4,p=0.25,seed=1", seeds=2, input_shape=(16, 16, 3),
        data=ml_collections.ConfigDict(dict(source="imagefolder", path={path!r}, image_size=16,
                                            workers=2, prefetch=1)),
        train_cfg=common.train(batch_size=4, epochs=2, lr=0.1, weight_decay=5e-4,
                               eval_batch_size=4))
    config.model.update(dict(nodes=8, stem_width=16, width=16, num_classes=3))
    config.train.update(dict(steps_per_call=2, width_buckets=1))
    return config
"""


def _children(pid: int) -> set[int]:
    """The processes `pid` started that run now (Linux /proc)."""
    found = set()
    for task in os.listdir(f"/proc/{pid}/task") if os.path.isdir(f"/proc/{pid}/task") else []:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found |= {int(c) for c in f.read().split()}
        except OSError:
            pass
    return found


def process_alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead but not reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def stream_sweep(out: str, per_class: tuple[int, int] = (8, 4)) -> str:
    """Writes the streamed sweep's image folder (3 classes, `per_class` train and val
    images) and config file under `out`; returns the config's path."""
    from relgraph_jax.data.testing import write_image_folder
    folder = os.path.join(out, f"images_{per_class[0]}_{per_class[1]}")
    if not os.path.isdir(folder):
        write_image_folder(folder, classes=("a", "b", "c"), per_class=per_class, shape=(20, 28))
    config = os.path.join(out, f"stream_config_{per_class[0]}_{per_class[1]}.py")
    with open(config, "w") as f:
        f.write(STREAM_CONFIG.format(path=folder))
    return config


def worker_startup(chaos: Chaos, workdir: str, kills: int) -> Outcome:
    """SIGTERM, SIGTERM twice and SIGKILL while the decoding workers start (they exist, no
    batch yet); each time every process the trainer started must be gone 2 s after it,
    and /dev/shm must hold nothing new. Then the sweep resumes to the end."""
    config = stream_sweep(chaos.out)
    streaming = Chaos(chaos.out, chaos.data, chaos.rng, chaos.clean_time)
    streaming.command = lambda where, *extra: [
        sys.executable, "-m", "experiments.main", f"--config={config}", f"--workdir={where}",
        *extra]
    reference = f"{workdir}_reference"
    outcome = Outcome(reference=reference, workdirs=[workdir])
    rc, text = streaming.finish(outcome, reference)
    expect(outcome, rc == 0, f"the uninterrupted stream run exited {rc}: {last_line(text)}")
    shm_before = set(os.listdir("/dev/shm"))
    for how in ("SIGTERM", "SIGTERM twice", "SIGKILL"):
        proc = streaming.start(outcome, workdir)
        seen = set()

        def starting():
            seen.update(_children(proc.pid))
            return len(seen) >= 2 and not _results_size(workdir)
        wait_until(proc, starting)
        signals = {"SIGTERM": [signal.SIGTERM], "SIGTERM twice": [signal.SIGTERM] * 2,
                   "SIGKILL": [signal.SIGKILL]}[how]
        for sig in signals:
            if proc.poll() is None:
                proc.send_signal(sig)
                seen |= _children(proc.pid)
                time.sleep(0.05)
        while proc.poll() is None:
            seen |= _children(proc.pid)
            time.sleep(0.05)
        time.sleep(2.0)
        survivors = sorted(p for p in seen if process_alive(p))
        expect(outcome, not survivors, f"{how}: {len(survivors)} of the {len(seen)} processes "
                                       f"the trainer started outlived it by 2 s: {survivors}")
        expect(outcome, how != "SIGTERM" or proc.returncode == 128 + signal.SIGTERM,
               f"{how}: exit {proc.returncode}, not 143")
        outcome.notes.append(f"{how}: exit {proc.returncode}, {len(seen)} processes started, "
                             f"{len(survivors)} left")
    time.sleep(1.0)  # the resource tracker of a killed trainer cleans up after it
    leaked = sorted(set(os.listdir("/dev/shm")) - shm_before)
    expect(outcome, not leaked, f"/dev/shm gained {leaked[:5]}")
    streaming.resume_to_end(outcome, workdir)
    return outcome


def import_kill(chaos: Chaos, workdir: str, kills: int) -> Outcome:
    """experiments.import_graph2nn --task all SIGKILLed at random moments (at most 3
    times), then rerun to the end; each task's records against an uninterrupted import."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")

    def importer(out):
        return subprocess.Popen([sys.executable, "-m", "experiments.import_graph2nn",
                                 "--task=all", f"--out={out}"], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    reference = f"{workdir}_reference"
    outcome = Outcome()
    start = time.time()
    clean = importer(reference)
    text = clean.communicate()[0]
    clean_time = time.time() - start
    outcome.runs += 1
    expect(outcome, clean.returncode == 0, f"the uninterrupted import exited "
                                           f"{clean.returncode}: {last_line(text)}")
    def tasks_done():
        return len([n for n in os.listdir(workdir) if not n.startswith(".")]) \
            if os.path.isdir(workdir) else 0
    for k in range(min(kills, 3)):  # at a random moment, then as soon as a task is written
        proc = importer(workdir)
        outcome.runs += 1
        if k == 0:
            time.sleep(chaos.rng.uniform(1.0, clean_time * 0.9))
        else:
            done = tasks_done()
            wait_until(proc, lambda: tasks_done() > done, timeout=clean_time * 3)
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    proc = importer(workdir)
    outcome.runs += 1
    text = proc.communicate()[0]
    expect(outcome, proc.returncode == 0, f"the rerun exited {proc.returncode}: "
                                          f"{last_line(text)}")
    kept = text.count("already imported")
    tasks = sorted(os.listdir(reference))
    outcome.workdirs = [(os.path.join(workdir, t), os.path.join(reference, t)) for t in tasks
                        if os.path.isdir(os.path.join(reference, t))]
    leftovers = [n for n in os.listdir(workdir) if n.startswith(".")]
    expect(outcome, not leftovers, f"left beside the tasks: {leftovers}")
    outcome.notes.append(f"{min(kills, 3)} SIGKILLs in a {clean_time:.0f} s import; the rerun "
                         f"kept {kept} finished task(s) and imported the rest")
    return outcome


FAULTS = {"kill": kill, "concurrent": concurrent, "disk_full_records": disk_full_records,
          "disk_full_ckpt": disk_full_ckpt, "corrupt_ckpt": corrupt_ckpt,
          "data_changed": data_changed, "search": search, "worker_startup": worker_startup,
          "import_kill": import_kill}


# ----------------------------------------------------------------------------- checking
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


def _write_digits(path: str) -> None:
    """The bundled digits as an .npz, so that a fault can change the data under a workdir."""
    from relgraph_jax import data
    digits = data.load({"source": "digits"})
    np.savez(path, x_train=digits.x_train, y_train=digits.y_train, x_test=digits.x_test,
             y_test=digits.y_test)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="all",
                        help=f"comma-separated fault kinds, or all: {', '.join(FAULTS)}")
    parser.add_argument("--kills", type=int, default=10, help="SIGKILLs of the kill kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="/tmp/relgraph_chaos")
    args = parser.parse_args()
    kinds = list(FAULTS) if args.kind == "all" else args.kind.split(",")
    unknown = [k for k in kinds if k not in FAULTS]
    if unknown:
        parser.error(f"--kind: unknown {unknown}; allowed: all or {', '.join(FAULTS)}")
    if args.kills < 1:
        parser.error(f"--kills={args.kills}: need at least 1")
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    data = os.path.join(args.out, "digits.npz")
    _write_digits(data)
    chaos = Chaos(args.out, data, random.Random(args.seed), clean_time=0.0)
    reference_dir = os.path.join(args.out, "reference")
    t0 = time.time()
    rc, text = chaos.finish(Outcome(), reference_dir)
    if rc != 0:
        sys.exit(f"reference run failed (exit {rc}): {last_line(text)}")
    chaos.clean_time = time.time() - t0
    print(f"reference run: {chaos.clean_time:.1f} s", flush=True)
    reference = _records(reference_dir)
    rows, ok = [], True
    for kind in kinds:
        t0 = time.time()
        outcome = FAULTS[kind](chaos, os.path.join(args.out, kind), args.kills)
        compared = differing = lost = duplicated = 0
        for entry in outcome.workdirs:  # a workdir, or (workdir, its own reference)
            workdir, ref = entry if isinstance(entry, tuple) else (entry, outcome.reference)
            c, d, m, u = compare(_records(ref) if ref else reference, _records(workdir))
            compared, differing, lost, duplicated = (compared + c, differing + d, lost + m,
                                                     duplicated + u)
        passed = differing == lost == duplicated == 0 and not outcome.problems
        ok &= passed
        what = "; ".join(outcome.notes + [f"PROBLEM: {p}" for p in outcome.problems])
        rows.append(f"| {kind} | {outcome.runs} | {compared} | {lost} | {duplicated} | "
                    f"{differing} | {time.time() - t0:.0f} | {'PASS' if passed else 'FAIL'} | "
                    f"{what} |")
        print(rows[-1], flush=True)
    print("\n| fault | runs | records compared | lost | duplicated | differing | seconds | "
          "verdict | what happened |\n|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\n{'PASS' if ok else 'FAIL'}: {len(kinds)} fault kinds, seed {args.seed}, "
          f"logs in {args.out}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
