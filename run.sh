#!/usr/bin/env bash
# relgraph_jax front door.
#   ./run.sh            set up (if needed) and run the offline quick start
#   ./run.sh test       set up (if needed) and run the test suite
#   ./run.sh ARGS...    set up (if needed) and pass ARGS to `python -m experiments.main`
# On a GPU or TPU VM, JAX_EXTRA=cuda12 (or cuda13, tpu) also installs jax's wheels for it.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${RELGRAPH_VENV:-.venv}
PY=${PYTHON:-python3}
EXTRA=${JAX_EXTRA:-}

setup() {
  local stamp="$VENV/.installed${EXTRA:+-$EXTRA}"
  if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
  fi
  # Reinstall only when the requirements or the package metadata changed.
  if [ ! -f "$stamp" ] || [ requirements.txt -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -r requirements.txt
    "$VENV/bin/python" -m pip install -q --no-deps -e .
    if [ -n "$EXTRA" ]; then  # the accelerator wheels of the jax just installed
      local jax_version
      jax_version=$("$VENV/bin/python" -c "from importlib.metadata import version; print(version('jax'))")
      "$VENV/bin/python" -m pip install -q "jax[$EXTRA]==$jax_version"
    fi
    touch "$stamp"
  fi
}

setup
case "${1:-}" in
  "")
    exec "$VENV/bin/python" -m experiments.main \
      --config=experiments/configs/quickstart.py --workdir="${WORKDIR:-workdirs/quickstart}"
    ;;
  test)
    shift
    # Eight fake CPU devices exercise the device-parallel code on one CPU. Tests run in
    # parallel, one worker per core (at most 4: each holds its own compiled programs);
    # a file's tests share a worker, so its module fixtures are built once.
    export JAX_PLATFORMS=cpu XLA_FLAGS="--xla_force_host_platform_device_count=8 ${XLA_FLAGS:-}"
    workers=${TEST_WORKERS:-$(( $(nproc) < 4 ? $(nproc) : 4 ))}
    exec "$VENV/bin/python" -m pytest -n "$workers" --dist loadfile "$@"
    ;;
  *)
    exec "$VENV/bin/python" -m experiments.main "$@"
    ;;
esac
