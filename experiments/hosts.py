"""The multi-host flags of experiments.main, checked before jax.distributed starts.

jax takes whatever it is given: a port that is not a number crashes the process, a
process index outside the run is ignored, and a process with no coordinator waits for
ever. `check` refuses each of those in one line; `initialize` starts jax.distributed with
a stated time limit and turns its failures into one line as well.
"""
from __future__ import annotations

import dataclasses
import re
import socket
import sys
import time

_HOST_PORT = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>\d{1,5})$")


@dataclasses.dataclass(frozen=True)
class Hosts:
    """coordinator None: a single process (no jax.distributed)."""
    coordinator: str | None
    num_processes: int | None
    process_id: int | None
    timeout_s: int


def check(coordinator: str | None, num_processes: int, process_id: int,
          timeout_s: int) -> Hosts:
    """The run's processes as the flags describe them; ValueError names a bad flag."""
    if timeout_s < 1:
        raise ValueError(f"--coordinator_timeout={timeout_s}: must be at least 1 (seconds)")
    if coordinator == "auto":
        if (num_processes, process_id) != (1, 0):
            raise ValueError("--coordinator=auto finds the process count and index itself; "
                             "leave --num_processes and --process_id out")
        return Hosts("auto", None, None, timeout_s)
    if num_processes < 1:
        raise ValueError(f"--num_processes={num_processes}: must be at least 1")
    if not 0 <= process_id < num_processes:
        raise ValueError(f"--process_id={process_id}: must lie in 0..{num_processes - 1} "
                         f"(--num_processes={num_processes})")
    if num_processes == 1:
        if coordinator:
            raise ValueError(f"--coordinator={coordinator!r} with one process: give "
                             "--num_processes=N (N > 1) and --process_id, or leave it out")
        return Hosts(None, None, None, timeout_s)
    if not coordinator:
        raise ValueError(f"--num_processes={num_processes} needs --coordinator=HOST:PORT "
                         "(process 0's host and a free port), or --coordinator=auto")
    found = _HOST_PORT.match(coordinator)
    if not found or not 1 <= int(found["port"]) <= 65535:
        raise ValueError(f"--coordinator={coordinator!r}: must be HOST:PORT with a port in "
                         "1..65535 (e.g. node0:8476), or auto")
    return Hosts(coordinator, num_processes, process_id, timeout_s)


def _wait_for_coordinator(hosts: Hosts) -> None:
    """Until the coordinator's port accepts connections, for at most the time limit: jax's
    own client aborts the whole process (no exception) when the coordinator never answers."""
    host, port = hosts.coordinator.rsplit(":", 1)
    deadline = time.monotonic() + hosts.timeout_s
    while True:
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=1).close()
            return
        except OSError as e:
            if time.monotonic() >= deadline:
                raise ValueError(
                    f"process {hosts.process_id}: the coordinator {hosts.coordinator} did not "
                    f"answer within --coordinator_timeout={hosts.timeout_s} s ({e.strerror or e}); "
                    "start process 0 on that host, or check the host name and port") from e
            time.sleep(0.5)


def initialize(hosts: Hosts) -> None:
    """Starts jax.distributed for several processes (nothing for one). Process 0 serves
    the coordinator; the others first wait for it to answer (one line if it never does)."""
    if hosts.coordinator is None:
        return
    if hosts.coordinator != "auto":
        if hosts.process_id:
            _wait_for_coordinator(hosts)
        print(f"process {hosts.process_id} of {hosts.num_processes}: meeting the others at "
              f"{hosts.coordinator} (at most {hosts.timeout_s} s)", file=sys.stderr, flush=True)
    import jax
    try:
        if hosts.coordinator == "auto":
            jax.distributed.initialize(initialization_timeout=hosts.timeout_s)
        else:
            jax.distributed.initialize(hosts.coordinator, hosts.num_processes, hosts.process_id,
                                       initialization_timeout=hosts.timeout_s)
    except Exception as e:  # jax raises ValueError, RuntimeError or XlaRuntimeError here
        first = (str(e).strip().splitlines() or [type(e).__name__])[0].rstrip(".")
        if hosts.coordinator == "auto":
            raise ValueError(f"--coordinator=auto found no cluster to take the coordinator "
                             f"from (a Cloud TPU VM slice, Slurm, Open MPI): {first}; give "
                             "--coordinator=HOST:PORT --num_processes=N --process_id=I") from e
        raise ValueError(f"the processes did not all meet at coordinator {hosts.coordinator} "
                         f"within --coordinator_timeout={hosts.timeout_s} s ({first}); check "
                         "that process 0 runs on that host and the port is free and reachable"
                         ) from e
