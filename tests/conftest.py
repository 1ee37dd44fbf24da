"""Test-wide setup, before jax is first imported: eight fake CPU devices, and one
compilation cache for the whole run.

The cache (a fresh directory per run, shared by the xdist workers and by the processes the
tests start, which inherit the environment) lets a program compiled by one test be loaded
by the next that builds the same one, e.g. the many command-line runs of one tiny sweep.
A cached executable is the one XLA compiled, so no result depends on it.
"""
import atexit
import os
import shutil
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               " --xla_force_host_platform_device_count=8").strip()
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:  # set once, by the first process
    _cache = tempfile.mkdtemp(prefix="relgraph-tests-xla-cache-")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ.update(JAX_COMPILATION_CACHE_DIR=_cache,
                      JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                      JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
