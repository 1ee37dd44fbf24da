"""experiments.main's multi-host flags: each bad combination refused in one line before
jax.distributed starts (jax would crash, ignore it, or wait for ever)."""
import os
import subprocess
import sys

import pytest

from experiments import hosts
from helpers import free_port

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("coordinator, num, pid, message", [
    ("localhost:notaport", 2, 0, "--coordinator='localhost:notaport': must be HOST:PORT"),
    ("garbage", 2, 0, "--coordinator='garbage': must be HOST:PORT"),
    ("node0:70000", 2, 1, "with a port in 1..65535"),
    (None, -3, 7, "--num_processes=-3: must be at least 1"),
    (None, 1, 1, "--process_id=1: must lie in 0..0 (--num_processes=1)"),
    ("node0:1234", 2, 2, "--process_id=2: must lie in 0..1"),
    (None, 2, 0, "--num_processes=2 needs --coordinator=HOST:PORT"),
    ("node0:1234", 1, 0, "--coordinator='node0:1234' with one process"),
    ("auto", 4, 0, "--coordinator=auto finds the process count and index itself"),
])
def test_bad_multi_host_flags_are_named(coordinator, num, pid, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace(".", r"\.")):
        hosts.check(coordinator, num, pid, 300)


def test_good_multi_host_flags_pass_through():
    assert hosts.check(None, 1, 0, 300) == hosts.Hosts(None, None, None, 300)
    assert hosts.check("node0:8476", 4, 3, 60) == hosts.Hosts("node0:8476", 4, 3, 60)
    assert hosts.check("[::1]:8476", 2, 1, 60).coordinator == "[::1]:8476"
    assert hosts.check("auto", 1, 0, 300).coordinator == "auto"
    with pytest.raises(ValueError, match="--coordinator_timeout=0: must be at least 1"):
        hosts.check(None, 1, 0, 0)


def test_a_coordinator_that_never_answers_gets_the_time_limit_and_one_line(tmp_path):
    port = free_port()
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.main",
         "--config=experiments/configs/quickstart.py:runlocal", f"--workdir={tmp_path / 'w'}",
         "--num_processes=2", "--process_id=1", f"--coordinator=127.0.0.1:{port}",
         "--coordinator_timeout=1"], capture_output=True, text=True, cwd=REPO, timeout=120,
        env={**os.environ, "JAX_PLATFORMS": "cpu"})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0] == (f"experiments.main: process 1: the coordinator 127.0.0.1:{port} did not "
                        "answer within --coordinator_timeout=1 s (Connection refused); start "
                        "process 0 on that host, or check the host name and port")
    assert not (tmp_path / "w").exists()
