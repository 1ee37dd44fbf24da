"""The trainer end to end on tiny sweeps: resume, device counts, divergence, multi-process.

One uninterrupted run on 8 fake devices is the reference; every other way of running the
same sweep must write exactly the same records.
"""
import os
import textwrap

import numpy as np
import pytest

from experiments.configs import quickstart
from relgraph_jax import results
from relgraph_jax.train import programs as programs_lib
from relgraph_jax.train import trainer
from helpers import free_port, run_two_processes, shared_trainer_compiles

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRAPHS = "paper:n16_48/0;paper:n16_48/42;complete:n=16"


def tiny_config(**train):
    """3 graphs x 2 seeds, a 16-node MLP on digits, 2 epochs of 11 steps."""
    config = quickstart.get_config()
    config.model.nodes = 16
    config.model.stem_width = 32
    config.model.width = 32
    config.graphs = GRAPHS
    config.seeds = 2
    config.train.batch_size = 128
    config.train.epochs = 2
    config.train.steps_per_call = 4
    config.train.variant_batch = 1  # the same per-variant program on 1 and 8 devices
    config.train.width_buckets = 1  # one compiled program per run keeps the suite fast
    config.train.update(train)
    return config


def _key(r):
    return (r["variant"], r["epoch"])


def _records(workdir):
    return sorted(results.read_records(os.path.join(workdir, results.RESULTS_FILE)), key=_key)


@pytest.fixture(scope="module", autouse=True)
def shared_compiles():
    """Every run here trains the same sweep's models with the same optimiser: each
    program is compiled once (with XLA's defaults: several checks are bitwise across
    device layouts), each graph initialised once."""
    with shared_trainer_compiles(fast=False):
        yield


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("reference"))
    summary = trainer.train_and_evaluate(tiny_config(), workdir)
    assert summary["finished"] and summary["variants"] == 6
    return _records(workdir)


def test_reference_records_are_complete_and_sensible(reference):
    assert [_key(r) for r in reference] == [(v, e) for v in range(6) for e in (1, 2)]
    assert {r["graph"] for r in reference} == set(GRAPHS.split(";"))
    complete = [r for r in reference if r["graph"] == "complete:n=16"]
    assert all(r["C"] == 1.0 and r["L"] == 1.0 and r["width"] == 32 for r in complete)
    # Sparser graphs are budget-matched to a wider layer.
    assert all(r["width"] > 32 for r in reference if r["graph"] != "complete:n=16")
    final = [r["test_error"] for r in reference if r["epoch"] == 2]
    assert all(r["status"] == "ok" for r in reference)
    # 10 digit classes: chance is 90% error; 22 steps already learn most of them.
    assert max(final) < 50.0 and np.mean(final) < 25.0


def test_stop_and_resume_writes_the_same_records(reference, tmp_path):
    workdir = str(tmp_path)
    first = trainer.train_and_evaluate(tiny_config(), workdir, stop_after_steps=5)
    assert not first["finished"] and first["step"] == 5
    second = trainer.train_and_evaluate(tiny_config(), workdir, stop_after_steps=9)
    assert second["step"] == 14  # crossed the epoch-1 evaluation
    trainer.train_and_evaluate(tiny_config(), workdir)
    assert _records(workdir) == reference


def test_resume_on_fewer_and_more_devices_writes_the_same_records(reference, tmp_path):
    """Checkpoints hold each variant by id, not the device layout's padded slots: a run
    stopped on 8 devices resumes on 2 and then 1, another goes from 1 to 8, bitwise."""
    def run(workdir, devices, stop=None):
        config = tiny_config()
        config.mesh.devices = devices
        return trainer.train_and_evaluate(config, workdir, stop_after_steps=stop)

    down = str(tmp_path / "down")
    assert run(down, 8, stop=5)["step"] == 5
    assert run(down, 2, stop=9)["step"] == 14
    assert run(down, 1)["finished"]
    assert _records(down) == reference
    up = str(tmp_path / "up")
    assert run(up, 1, stop=7)["step"] == 7
    assert run(up, 8)["finished"]
    assert _records(up) == reference


def test_resume_with_other_buckets_and_variant_batch(reference, tmp_path):
    """Another split into buckets or variant batch pads and groups the variants differently:
    allowed on resume, and only float32 rounding changes (as for a whole run done so)."""
    workdir = str(tmp_path)
    trainer.train_and_evaluate(tiny_config(), workdir, stop_after_steps=8)
    trainer.train_and_evaluate(tiny_config(width_buckets=3, variant_batch=0), workdir)
    _assert_close_records(_records(workdir), reference, loss_rtol=2e-3, error_points=0.6)


def test_a_new_chunk_length_compiles_nothing(tmp_path, monkeypatch):
    """The steps of a chunk are a runtime count: chunks of 4, 4 and 3 steps (11-step
    epochs), then 1-step chunks after a resume, all run one compiled program."""
    built = []

    def recording(*args, **kwargs):
        built.append(original(*args, **kwargs))
        return built[-1]

    original = programs_lib.build
    monkeypatch.setattr(programs_lib, "build", recording)
    config = tiny_config(steps_per_call=4)
    config.graphs = "complete:n=16"
    trainer.train_and_evaluate(config, str(tmp_path), stop_after_steps=13)
    trainer.train_and_evaluate(tiny_config(steps_per_call=1), str(tmp_path / "other"),
                               stop_after_steps=2)
    assert [p.train_resident._cache_size() for p in built] == [1, 1]


def test_one_device_gives_the_same_records_as_eight(reference, tmp_path):
    config = tiny_config()
    config.mesh.devices = 1
    trainer.train_and_evaluate(config, str(tmp_path))
    assert _records(str(tmp_path)) == reference


def test_a_diverging_variant_is_frozen_and_spares_the_others(reference, tmp_path):
    config = tiny_config()
    config.grid.lr = (config.train.lr, 1e30)
    trainer.train_and_evaluate(config, str(tmp_path))
    recs = _records(str(tmp_path))
    failed = [r for r in recs if r["hparams"]["lr"] == 1e30]
    assert failed and all(r["status"] == "failed" for r in failed)
    assert all("non-finite" in r["failure"] and r["test_error"] is None for r in failed)
    assert all(r["failure"].startswith("non-finite loss or parameters at step ") for r in failed)
    healthy = {(r["graph"], r["seed"], r["epoch"]): r for r in recs if r["hparams"]["lr"] != 1e30}
    same_fields = ("train_loss", "test_loss", "test_error", "width", "macs", "status")
    for r in reference:
        twin = healthy[(r["graph"], r["seed"], r["epoch"])]
        assert {k: twin[k] for k in same_fields} == {k: r[k] for k in same_fields}


def test_two_processes_train_one_sweep_together(reference, tmp_path):
    """jax.distributed with 2 local processes x 2 CPU devices; process 0 writes records.
    A SIGTERM that reaches only process 1, in its second chunk (steps 4-8), stops both
    after that chunk with one checkpoint; rerun, they finish with the uninterrupted
    records."""
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(f"""
        import os, signal, sys
        os.environ["JAX_PLATFORMS"] = "cpu"
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
        sys.path.insert(0, {REPO!r})
        import jax
        jax.distributed.initialize("127.0.0.1:{free_port()}", 2, int(sys.argv[1]))
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from helpers import shared_trainer_compiles
        from test_train import tiny_config
        from relgraph_jax.train import trainer
        train_steps, chunks = trainer.train_steps, []

        def preempted_on_process_1(*args):
            train_steps(*args)
            chunks.append(args[1])
            if jax.process_index() == 1 and len(chunks) == 2:
                os.kill(os.getpid(), signal.SIGTERM)
        trainer.train_steps = preempted_on_process_1
        with shared_trainer_compiles(fast=False):  # the rerun compiles nothing new
            first = trainer.train_and_evaluate(tiny_config(), {str(tmp_path / "run")!r})
            second = trainer.train_and_evaluate(tiny_config(), {str(tmp_path / "run")!r})
        print("stopped at", first["step"], "by", first["stopped_by_signal"], "finished",
              second["finished"], "chunks from", chunks)
    """))
    outputs = run_two_processes(script, REPO)
    assert "4 devices" in outputs[0]
    for output in outputs:
        assert "stopped at 8 by 15 finished True chunks from [0, 4, 8, 11, 15, 19]" in output, \
            output[-3000:]
    assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == ["11", "22"]
    assert _records(str(tmp_path / "run")) == reference


def test_a_data_parallel_axis_gives_the_same_training(reference, tmp_path):
    """mesh.data=2 splits each batch over two devices (BatchNorm statistics stay global),
    so only the order of floating-point reductions changes."""
    config = tiny_config()
    config.mesh.data = 2
    trainer.train_and_evaluate(config, str(tmp_path))
    recs = _records(str(tmp_path))
    assert [_key(r) for r in recs] == [_key(r) for r in reference]
    for got, want in zip(recs, reference):
        assert got["width"] == want["width"] and got["status"] == "ok"
        np.testing.assert_allclose(got["train_loss"], want["train_loss"], rtol=1e-4)
        np.testing.assert_allclose(got["test_loss"], want["test_loss"], rtol=1e-3)
        assert abs(got["test_error"] - want["test_error"]) <= 100.0 * 2 / 360  # <= 2 test digits


def _assert_close_records(recs, reference, loss_rtol, error_points):
    assert [_key(r) for r in recs] == [_key(r) for r in reference]
    for got, want in zip(recs, reference):
        assert got["status"] == "ok" and got["width"] == want["width"]
        np.testing.assert_allclose(got["train_loss"], want["train_loss"], rtol=loss_rtol)
        np.testing.assert_allclose(got["test_loss"], want["test_loss"], rtol=loss_rtol)
        assert abs(got["test_error"] - want["test_error"]) <= error_points


def test_buckets_vmap_and_gather_train_the_same_models(reference, tmp_path, capsys):
    """Width buckets (each graph at its own width), all variants vmapped and the gather
    layout change only float32 rounding: the records track the reference run (one program
    padded to the widest, mask path, one variant at a time)."""
    config = tiny_config(width_buckets=3, variant_batch=0)
    config.model.impl = "gather"
    trainer.train_and_evaluate(config, str(tmp_path))
    assert "6 variants in 3 bucket(s)" in capsys.readouterr().out  # the fast layout ran
    _assert_close_records(_records(str(tmp_path)), reference, loss_rtol=2e-3,
                          error_points=0.6)  # 2 of 360 digits


def test_bfloat16_trains_as_well_as_float32(reference, tmp_path):
    """bfloat16 rounding moves single runs of this 22-step sweep by several points either
    way, so the check is on the sweep: every variant learns, and the mean final error
    stays within 3 points of float32's."""
    trainer.train_and_evaluate(tiny_config(compute_dtype="bfloat16"), str(tmp_path))
    recs = _records(str(tmp_path))
    assert [_key(r) for r in recs] == [_key(r) for r in reference]
    final = [r["test_error"] for r in recs if r["epoch"] == 2]
    want = [r["test_error"] for r in reference if r["epoch"] == 2]
    assert all(r["status"] == "ok" for r in recs) and max(final) < 50.0
    assert abs(np.mean(final) - np.mean(want)) <= 3.0
    # bfloat16 arithmetic really ran: losses move by far more than float32 rounding.
    moved = [abs(r["train_loss"] / w["train_loss"] - 1) for r, w in zip(recs, reference)]
    assert max(moved) > 1e-3
