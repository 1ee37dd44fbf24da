"""A workdir belongs to one configuration, one data set and one run at a time.

What "the same workdir" means, so that records of different configs, data sets or runs
are never mixed:
- `config.json`: the config that made it (`check_compatible` refuses another one, and a
  workdir holding checkpoints or records but no config.json);
- `data.json`: the data fingerprint (`relgraph_jax.data.fingerprint`) taken before the
  first run wrote anything; other data is refused, and so is a workdir holding checkpoints
  or records but no data.json, unless `adopt_data` vouches for the current data;
- `run.lock`: the PID and host of the run that has it (`lock`); a second run is refused
  while the first is alive, and a lock left by a killed run is taken over.
"""
from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import socket
import tempfile

from relgraph_jax import config_fields, machine, results

CONFIG_FILE = "config.json"
DATA_FILE = "data.json"
LOCK_FILE = "run.lock"
CHECKPOINTS_DIR = "checkpoints"


class WorkdirError(ValueError):
    """The workdir cannot be used as it is; the message says why and what to do."""

def _flatten(d, prefix=""):
    out = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def config_identity(config_dict: dict) -> dict:
    """The flattened config minus what its results do not depend on: run-control fields,
    fields at their default and fields inert in it (the config-field table,
    `config_fields.identity`), and model fields at their family's default. A workdir made
    before a field existed therefore resumes while the field stays at its default."""
    from relgraph_jax import models  # jax and flax: only where a workdir is compared
    flat = _flatten(json.loads(json.dumps(config_dict, default=list)))
    kept = config_fields.identity(flat)
    name = flat.get("model.name")
    if name not in models.FAMILIES:  # its module not imported here: every field counts
        return kept
    family = _flatten({"model": models.default_config(name).to_dict()})
    family = json.loads(json.dumps(family, default=list))
    return {k: v for k, v in kept.items()
            if k == "model.name" or k not in family or family[k] != v}


def check_writable(workdir: str) -> None:
    """Proves that workdir is, or can be made, a writable folder, before anything
    expensive, and creates nothing: a refused run leaves no trace (`create` makes it)."""
    existing = os.path.abspath(workdir)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    why = ("Not a directory" if not os.path.isdir(existing) else
           None if os.access(existing, os.W_OK | os.X_OK) else "Permission denied")
    if why:
        raise ValueError(f"workdir {workdir!r} is not writable ({why}: {existing!r}); pass a "
                         "--workdir you can write to")


def create(workdir: str) -> None:
    """Makes workdir (and its parents) once every check has passed."""
    try:
        os.makedirs(workdir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=workdir, prefix=".write_test"):
            pass
    except OSError as e:
        raise ValueError(f"workdir {workdir!r} is not writable ({e.strerror}); "
                         "pass a --workdir you can write to") from e


def _differences(old: dict, new: dict) -> str:
    """'key: A there vs B now; ...' for the first five keys that differ. The identities
    leave out fields at their default, so a key one side lacks is at its default there."""
    def shown(identity: dict, key: str) -> str:
        return repr(identity[key]) if key in identity else "its default"
    diffs = [f"{k}: {shown(old, k)} there vs {shown(new, k)} now"
             for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return "; ".join(diffs[:5]) + (f"; and {len(diffs) - 5} more" if len(diffs) > 5 else "")


def _run_state(workdir: str) -> list[str]:
    """What in the workdir a run made: checkpoint steps, records."""
    found = []
    ckpt = os.path.join(workdir, CHECKPOINTS_DIR)
    if os.path.isdir(ckpt) and any(name.isdigit() for name in os.listdir(ckpt)):
        found.append(f"{CHECKPOINTS_DIR}/")
    path = os.path.join(workdir, results.RESULTS_FILE)
    if os.path.isfile(path) and os.path.getsize(path) > 0:
        found.append(results.RESULTS_FILE)
    return found


def _read_json(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise WorkdirError(f"{path} is unreadable ({type(e).__name__}: {e}); it says what "
                           "made this workdir: restore it, or use a new --workdir") from e


def check_compatible(workdir: str, config_dict: dict, data: dict | None = None,
                     adopt_data: bool = False) -> bool:
    """Raises if the workdir holds results of a different config or data set (`data`: the
    fingerprint, when known); True if it holds this one, False if it is new.

    A workdir with checkpoints or records but no config.json is refused too: which config
    made them is unknown, so this one must not resume them. Likewise one with checkpoints
    or records but no data.json (deleted, or made before data fingerprints existed) is
    refused unless `adopt_data` (`--adopt_data`) says the current data made them. Other
    data than data.json records is refused once the workdir holds checkpoints or records;
    before its first step (a run that failed on a bad image, say) the data may be fixed.
    """
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        made = _run_state(workdir)
        if made:
            raise WorkdirError(
                f"workdir {workdir!r} holds {' and '.join(made)} but no {CONFIG_FILE}, so "
                "which config made them is unknown and this run could mix with them: put "
                f"{CONFIG_FILE} back, or use a new --workdir (or delete this one to start over)")
        return False
    old = config_identity(_read_json(path))
    identity = config_identity(config_dict)
    if old != identity:
        raise WorkdirError(
            f"workdir {workdir!r} was created by a different config "
            f"({_differences(old, identity)}). Results of different configs are never "
            "mixed: use a new --workdir, or delete this one to start over.")
    data_path = os.path.join(workdir, DATA_FILE)
    if data is not None and not os.path.exists(data_path):
        made = _run_state(workdir)
        if made and not adopt_data:
            raise WorkdirError(
                f"workdir {workdir!r} holds {' and '.join(made)} but no {DATA_FILE}, so which "
                "data made them is unknown and this run could mix two data sets: put "
                f"{DATA_FILE} back; or, if the workdir was made before data fingerprints "
                "existed and its data is unchanged, rerun with --adopt_data to record the "
                "current data's")
    elif data is not None:
        recorded = _read_json(data_path)
        if recorded != data and _run_state(workdir):  # untrained: `claim` takes the new data
            raise WorkdirError(
                f"the data changed since workdir {workdir!r} was made "
                f"({_differences(recorded, data)}); its epochs would mix two data sets: "
                "restore the data it was made with, or use a new --workdir")
    return True


def claim(workdir: str, config_dict: dict, data: dict | None = None,
          adopt_data: bool = False) -> str | None:
    """Checks the workdir again (`check_compatible`) and records the config and the data
    fingerprint where it holds none yet, or where it trained no step from the data its
    data.json names (that data changed, e.g. a bad image replaced: a notice says so).

    Call it with the workdir's `Lock` held, so that no other run claims it between the
    check and the writes, and once every other check has passed, so that an invalid
    config never marks a workdir; a resumed workdir keeps what it holds. Returns a notice
    when `adopt_data` recorded the current data for existing checkpoints or records, or
    when untrained data was replaced.
    """
    resumed = check_compatible(workdir, config_dict, data, adopt_data)
    path = os.path.join(workdir, CONFIG_FILE)
    if not resumed:
        results.write_atomically(path, json.dumps(config_dict, indent=2, sort_keys=True,
                                                  default=list).encode())
    data_path = os.path.join(workdir, DATA_FILE)
    recorded = _read_json(data_path) if os.path.exists(data_path) else None
    if data is None or recorded == data:
        return None
    # Other recorded data got through check_compatible only for a workdir that trained
    # nothing; a missing data.json, for a new workdir or with adopt_data.
    adopted = recorded is None and resumed and _run_state(workdir)
    results.write_atomically(data_path, json.dumps(data, indent=2, sort_keys=True).encode())
    if recorded is not None:
        return (f"workdir {workdir!r} had trained no step yet: the data changed since it was "
                f"made, and its {DATA_FILE} now records the current data's")
    if adopted:
        return (f"workdir {workdir!r} had no {DATA_FILE}: recorded the current data's, as "
                "--adopt_data asked; from now on other data is refused")
    return None


# ----------------------------------------------------------------------------- the lock
class Lock:
    """WORKDIR/run.lock held by this process: an exclusive flock on the file, which also
    names the holder (PID, host, start time) for the message a second run gets.

    The kernel drops a flock when its process dies, however it dies, so a lock left by a
    killed run on this host is recognised as stale and taken over (`notice` says so). A
    lock written on another host cannot be checked from here (and a shared file system
    may not pass flocks between hosts): it is refused, with how to remove it. Where the
    file system has no flock, the holder's PID is checked instead.
    """

    def __init__(self, workdir: str):
        self.path = os.path.join(workdir, LOCK_FILE)
        self.notice = None
        self._fd = None
        while self._fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                self._take(fd)
            except BaseException:
                os.close(fd)
                raise

    def _take(self, fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            kernel_lock = True
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise WorkdirError(self._in_use(_holder(fd))) from None
            kernel_lock = False  # no flock here (some network file systems)
        if not _same_file(fd, self.path):
            os.close(fd)  # released and removed meanwhile by its holder: try again
            return
        holder = _holder(fd)
        host = socket.gethostname()
        if holder:
            if holder.get("host") != host:
                raise WorkdirError(
                    f"{self.path} says the workdir belongs to PID {holder.get('pid')} on "
                    f"host {holder.get('host')!r} (since {holder.get('started')}), whose "
                    f"liveness this host ({host!r}) cannot check: if no run uses this "
                    f"workdir any more, delete {self.path} and rerun")
            pid = holder.get("pid")
            if (not kernel_lock and isinstance(pid, int) and pid > 0 and pid != os.getpid()
                    and machine.pid_alive(pid)):
                raise WorkdirError(self._in_use(holder))
            self.notice = (f"took over {self.path} from PID {holder.get('pid')} (since "
                           f"{holder.get('started')}), which is no longer running")
        mine = {"pid": os.getpid(), "host": host,
                "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(mine).encode(), 0)
        os.fsync(fd)
        self._fd = fd

    def _in_use(self, holder: dict) -> str:
        pid = holder.get("pid", "?")
        return (f"workdir {os.path.dirname(self.path)!r} is in use by another run (PID {pid} "
                f"on host {holder.get('host', '?')}, since {holder.get('started', '?')}); "
                f"two runs would write every record twice: wait for it to finish, or stop "
                f"it (kill {pid}; it checkpoints and exits) and rerun")

    def release(self) -> None:
        """Removes the lock file (if it is still this one) and drops the flock."""
        if self._fd is None:
            return
        if _same_file(self._fd, self.path):
            os.unlink(self.path)
        os.close(self._fd)
        self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def _holder(fd: int) -> dict:
    """The PID/host/start a lock file names; {} when empty or unreadable (a crash while
    it was being written)."""
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def _same_file(fd: int, path: str) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False
