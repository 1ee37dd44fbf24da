"""examples/extending/ as docs/extending.md presents it: a graph kind, a schedule and a
model family from the user's own files, each checked against an independent reference,
and the config using all three run as a user runs it, from a clone, in its own process."""
import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import networkx as nx
import numpy as np
import pytest

from relgraph_jax import budget, extensions, models
from relgraph_jax.graphs import RelationalGraph, resolve
from relgraph_jax.train import schedules
from helpers import FAST, registrations_undone

ROOT = pathlib.Path(__file__).resolve().parents[1]
FAST_XLA_FLAGS = " ".join(f"--{flag}={str(value).lower()}" for flag, value in FAST.items())
EXAMPLES = ("examples.extending.mobius", "examples.extending.triangular",
            "examples.extending.allconv")


@pytest.fixture(scope="module", autouse=True)
def examples_registered():
    """The three examples registered for this file's tests only."""
    with registrations_undone("examples"):
        extensions.load(EXAMPLES)
        yield


def test_moebius_ladder_is_3_regular_with_networkx_measures():
    g = RelationalGraph.from_spec("moebius:n=8")
    reference = nx.circulant_graph(8, [1, 4])
    assert (g.n, len(g.edges)) == (8, 12)
    assert g.C == pytest.approx(nx.average_clustering(reference))
    assert g.L == pytest.approx(nx.average_shortest_path_length(reference))
    with pytest.raises(ValueError, match="needs an even n >= 4"):
        resolve("moebius:n=7")


def test_triangular_schedule_climbs_and_falls_each_cycle():
    """Cycle of 2 epochs x 2 steps: 0.1 at the cycle's start, 1 at its middle (hand-computed
    0.1 + 0.9 (1 - |2 phase - 1|))."""
    train_cfg = ml_collections.ConfigDict(dict(cycle_epochs=2))
    multiplier = schedules.SCHEDULES["triangular"].make(train_cfg, 2)
    got = [float(multiplier(jnp.asarray(step))) for step in range(6)]
    np.testing.assert_allclose(got, [0.1, 0.55, 1.0, 0.55, 0.1, 0.55], rtol=1e-6)


def test_allconv_layer_list_accounts_for_every_parameter():
    """The family's contract: `layer_list` counts what `init` creates (hand-derived: a 3x3
    stem, two graph 3x3 convs per stage, a 1x1 head with bias, BatchNorm scale and bias)."""
    config = models.default_config("allconv")
    config.update(models.FAMILIES["allconv"].tiny)
    graph = RelationalGraph.from_spec("complete:n=8")
    cost = budget.count(config, graph, None, (8, 8, 1))
    module = models.build(config, graph)
    shapes = jax.eval_shape(lambda x: module.init(jax.random.key(0), x, train=False),
                            jnp.zeros((1, 8, 8, 1)))  # what init creates, computing nothing
    created = sum(x.size for x in jax.tree.leaves(shapes["params"]))
    w = models.stage_widths(config)  # (8, 16, 32)
    stem, head = 9 * 1 * 8 + 2 * 8, 32 * 10 + 10
    convs = sum(9 * cin * cout + 2 * cout for cin, cout in
                ((8, w[0]), (w[0], w[0]), (w[0], w[1]), (w[1], w[1]), (w[1], w[2]), (w[2], w[2])))
    assert created == cost.params == stem + convs + head


def test_the_example_config_runs_from_a_clone(tmp_path):
    """As docs/extending.md says to run it: records name the Moebius ladder and allconv,
    config.json records the imports, and analyze (another process, given only the
    workdir) imports them to count the sweep config.json declares."""
    workdir = tmp_path / "w"
    # One device, compiled without XLA's slow optimisations: what is checked does not
    # depend on either.
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=FAST_XLA_FLAGS)
    run = subprocess.run(
        [sys.executable, "-m", "experiments.main", "--config=examples/extending/config.py:runlocal",
         f"--workdir={workdir}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    records = [json.loads(line) for line in (workdir / "results.jsonl").read_text().splitlines()]
    assert {(r["graph"], r["model"], r["status"]) for r in records} == {
        ("moebius:n=8", "allconv", "ok"), ("complete:n=8", "allconv", "ok")}
    assert json.loads((workdir / "config.json").read_text())["imports"] == list(EXAMPLES)
    report = subprocess.run(
        [sys.executable, "-m", "experiments.analyze", f"--workdir={workdir}",
         f"--out={tmp_path / 'report'}"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=300)
    assert report.returncode == 0, report.stderr[-2000:]
    assert "all 2 variants config.json declares" in (tmp_path / "report" / "REPORT.md").read_text()
