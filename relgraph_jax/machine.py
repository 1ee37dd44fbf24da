"""How much memory this machine has for what is about to be built, and which of its
processes still run.

Whatever would not fit is refused with the figures (`check_fits`) instead of being killed
by the out-of-memory killer minutes later without a message. Host memory is what Linux
reports as available (MemAvailable), lowered to a container's (cgroup) limit where one is
set; an accelerator's is its `memory_stats()["bytes_limit"]`. No jax import here: the
graph tools use it too.
"""
from __future__ import annotations

import os
import socket

_CGROUP_FILES = (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # v2
                 ("/sys/fs/cgroup/memory/memory.limit_in_bytes",                   # v1
                  "/sys/fs/cgroup/memory/memory.usage_in_bytes"))


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):  # absent, or "max" (no limit)
        return None


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def available_host_bytes() -> int | None:
    """Bytes the host can still give this process; None where the system does not say."""
    found = [_meminfo_available()]
    for limit_path, usage_path in _CGROUP_FILES:
        limit, usage = _read_int(limit_path), _read_int(usage_path)
        if limit is not None and usage is not None and limit < 1 << 60:
            found.append(max(limit - usage, 0))
    found = [b for b in found if b is not None]
    return min(found) if found else None


def device_bytes_limit(device) -> int | None:
    """The memory an accelerator lets a program use; None for the CPU (it shares the
    host's, see `available_host_bytes`) or where the backend does not report it."""
    if device.platform == "cpu":
        return None
    try:
        return int((device.memory_stats() or {})["bytes_limit"])
    except (KeyError, TypeError, ValueError, AttributeError, NotImplementedError):
        return None


def gib(num_bytes: float) -> str:
    return f"{num_bytes / 2**30:,.1f} GiB"


def check_fits(needed: int, available: int | None, what: str, hint: str) -> None:
    """ValueError naming both figures when `needed` bytes exceed `available` (None: the
    system does not say, so nothing is refused)."""
    if available is not None and needed > available:
        raise ValueError(f"{what} needs about {gib(needed)} of memory, more than the "
                         f"{gib(available)} available; {hint}")


def pid_alive(pid: int) -> bool:
    """Whether process `pid` of this host runs (another user's counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


# Temporary files and folders a process writes beside their final place are named
# PREFIX + HOST-PID-..., so that a later run can tell a killed run's leftovers (this
# host, a process that is gone) from work in progress, here or on another host of a
# shared disk. '-' separates the parts, so it is replaced in the host name.
_HOST = socket.gethostname().replace("-", "_")


def owned_prefix(prefix: str) -> str:
    """`prefix` followed by this host and process: for tempfile's prefix argument."""
    return f"{prefix}{_HOST}-{os.getpid()}-"


def leftovers(folder: str, prefix: str) -> list[str]:
    """Paths in `folder` named by `owned_prefix(prefix)` of a process of this host that
    no longer runs."""
    mine = f"{prefix}{_HOST}-"
    found = []
    for name in os.listdir(folder):
        pid = name[len(mine):].split("-", 1)[0]
        if name.startswith(mine) and pid.isdigit() and not pid_alive(int(pid)):
            found.append(os.path.join(folder, name))
    return found


def chmod_as_created(path: str, mode: int) -> None:
    """Gives a file or folder made by tempfile (0600 / 0700) the permissions `mode`
    less the umask, as open() or mkdir() would have."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)

