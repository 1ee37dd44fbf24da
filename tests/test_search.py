"""Successive halving (relgraph_jax.search.halving), the live search's books
(relgraph_jax.search.live, on stand-in variants and records) and the replay on recorded
curves (relgraph_jax.search.replay, experiments.replay_search), against hand-computed
values. No jax: every case is a few numbers."""
import json
import math
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest

from relgraph_jax.search import HalvingPolicy, live, model_epochs, rank
from relgraph_jax.search.replay import baseline_epoch, load_curves, replay

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------------------- the policy
@pytest.mark.parametrize("policy,epochs,rungs", [
    (HalvingPolicy(), 100, [3, 9, 27, 81]),
    (HalvingPolicy(eta=2, first_rung=1), 6, [1, 2, 4]),
    (HalvingPolicy(eta=4, first_rung=5), 100, [5, 20, 80]),
    (HalvingPolicy(), 3, []),      # a decision at the last epoch saves nothing
    (HalvingPolicy(), 4, [3]),
])
def test_rungs_are_first_rung_times_powers_of_eta_below_the_last_epoch(policy, epochs, rungs):
    assert policy.rungs(epochs) == rungs


@pytest.mark.parametrize("policy,n,kept", [
    (HalvingPolicy(), 53, 18), (HalvingPolicy(), 18, 6), (HalvingPolicy(), 6, 2),
    (HalvingPolicy(), 2, 1), (HalvingPolicy(), 1, 1), (HalvingPolicy(eta=2), 7, 4),
    (HalvingPolicy(keep_at_least=4), 6, 4),     # floor above ceil(6 / 3) = 2
    (HalvingPolicy(keep_at_least=10), 6, 6),    # never more than there are
])
def test_keep_count_is_ceil_n_over_eta_within_keep_at_least_and_n(policy, n, kept):
    assert policy.keep_count(n) == kept
    decision = policy.decide({f"g{i}": float(i) for i in range(n)})
    assert decision.kept == tuple(f"g{i}" for i in range(kept))
    assert decision.pruned == tuple(f"g{i}" for i in range(kept, n))


def test_failed_scores_rank_last_and_ties_keep_the_given_order():
    scores = {"a": 1.0, "b": math.nan, "c": 5.0, "d": 0.5, "e": None, "f": 1.0,
              "g": math.inf}
    decision = HalvingPolicy().decide(scores)
    assert [k for k, _ in decision.ranking] == ["d", "a", "f", "c", "b", "e", "g"]
    assert [s for _, s in decision.ranking][:4] == [0.5, 1.0, 1.0, 5.0]
    assert all(math.isnan(s) for _, s in decision.ranking[4:])
    assert decision.kept == ("d", "a", "f") and decision.pruned == ("c", "b", "e", "g")
    # Same scores given in another order: the tie between a and f flips with it.
    swapped = {"f": 1.0, **{k: v for k, v in scores.items() if k != "f"}}
    assert HalvingPolicy().decide(swapped).kept == ("d", "f", "a")
    ranked = rank({"x": None, "y": 2})
    assert ranked[0] == ("y", 2.0) and ranked[1][0] == "x" and math.isnan(ranked[1][1])


def test_forced_graphs_survive_wherever_they_rank():
    scores = {"a": 3.0, "complete": 9.0, "b": 1.0, "c": 2.0, "d": math.nan, "e": 4.0}
    decision = HalvingPolicy(forced=("complete", "d")).decide(scores)
    assert decision.kept == ("b", "c", "complete", "d")        # best 2 of 6, plus both forced
    assert decision.pruned == ("a", "e")
    line = json.loads(json.dumps(decision.to_json(), allow_nan=False))
    assert line == {"ranking": [["b", 1.0], ["c", 2.0], ["a", 3.0], ["e", 4.0],
                                ["complete", 9.0], ["d", None]],
                    "kept": ["b", "c", "complete", "d"], "pruned": ["a", "e"]}


def test_compute_fraction_counts_model_epochs_of_the_schedule():
    # 53 graphs, 100 epochs, rungs 3, 9, 27, 81 keeping 18, 6, 2, 1:
    # 53*3 + 18*6 + 6*18 + 2*54 + 1*19 = 502 of 5300 model-epochs.
    policy = HalvingPolicy()
    assert policy.alive_counts(53, 100) == [18, 6, 2, 1]
    assert model_epochs(53, [3, 9, 27, 81], [18, 6, 2, 1], 100) == 502
    assert policy.compute_fraction(53, 100) == pytest.approx(502 / 5300)
    # A forced graph kept beyond the count: survivors as decided, 53*3 + 19*6 + 7*18 + 3*54 + 2*19.
    assert policy.compute_fraction(53, 100, survivors=[19, 7, 3, 2]) == pytest.approx(599 / 5300)
    assert policy.compute_fraction(10, 3) == 1.0            # no rung: a full run
    with pytest.raises(ValueError, match="3 survivor counts for 4 rungs"):
        model_epochs(53, [3, 9, 27, 81], [18, 6, 2], 100)


@pytest.mark.parametrize("fields,message", [
    ({"eta": 1}, "eta=1: must be an integer >= 2"),
    ({"eta": 2.5}, "eta=2.5: must be an integer >= 2"),
    ({"eta": True}, "eta=True: must be an integer >= 2"),
    ({"first_rung": 0}, "first_rung=0: must be an integer >= 1"),
    ({"keep_at_least": 0}, "keep_at_least=0: must be an integer >= 1"),
    ({"forced": ["complete:n=64"]}, "forced=['complete:n=64']: must be a tuple of graph keys"),
])
def test_validate_names_the_bad_field(fields, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        HalvingPolicy(**fields).validate()


# ----------------------------------------------------------------------------- live books
LIVE_SPECS = ("paper:a", "paper:b", "paper:c", "complete:n=16")  # 2 seeds each: ids 2g, 2g+1
LIVE_CFG = SimpleNamespace(policy="halving", eta=2, first_rung=1, keep_at_least=1,
                           keep_complete=True, metric="val_error")


def _live(workdir, writer=True):
    """4 graphs x 2 seeds, 4 epochs of 10 steps: rungs after epochs 1 and 2."""
    variants = [SimpleNamespace(id=2 * g + s, graph=SimpleNamespace(spec=spec), seed=s)
                for g, spec in enumerate(LIVE_SPECS) for s in range(2)]
    return live.LiveSearch(LIVE_CFG, variants, (), 4, 10, str(workdir), writer)


def _live_records(val_errors):
    """Records of variant id -> val_error (None: the variant failed)."""
    return [{"variant": i, "status": "ok" if v is not None else "failed", "val_error": v}
            for i, v in val_errors.items()]


def test_live_search_prunes_forces_the_complete_graph_and_counts_compute(tmp_path):
    search = _live(tmp_path)
    assert search.rungs == [1, 2] and not search.is_rung(3)
    # Epoch 1, mean over seeds: a 11, b 6, c failed (seed 1), complete 30. keep 2 of 4 by
    # rank (b, a), plus the complete graph (forced); c is pruned, its ok record marked.
    records = _live_records({0: 10, 1: 12, 2: 5, 3: 7, 4: 20, 5: None, 6: 30, 7: 30})
    assert search.decide(1, records) == {4, 5}
    assert [r["status"] for r in records] == ["ok"] * 4 + ["pruned", "failed", "ok", "ok"]
    assert [v.id for v in search.alive(9)] == list(range(8))        # still inside epoch 1
    assert [v.id for v in search.alive(10)] == [0, 1, 2, 3, 6, 7]
    # Step 15: 6 variants x 1.5 epochs + 2 x 1 epoch.
    assert search.progress(15) == "6 of 8 variants | 11.0/32 model-epochs (34.4 %)"
    # Epoch 2: complete 1, b 8, a 9 -> keep complete, b; prune a.
    assert search.decide(2, _live_records({0: 9, 1: 9, 2: 8, 3: 8, 6: 1, 7: 1})) == {0, 1}
    assert search.decide(3, _live_records({2: 0, 3: 0, 6: 0, 7: 0})) == set()  # no rung
    lines = live.read_decisions(str(tmp_path))
    assert lines == [
        {"epoch": 1, "metric": "val_error", "ranking": [["paper:b", 6.0], ["paper:a", 11.0],
         ["complete:n=16", 30.0], ["paper:c", None]], "kept": ["paper:b", "paper:a",
         "complete:n=16"], "pruned": ["paper:c"], "model_epochs": 8.0,
         "full_model_epochs": 32, "variants_alive": 6},
        {"epoch": 2, "metric": "val_error", "ranking": [["complete:n=16", 1.0],
         ["paper:b", 8.0], ["paper:a", 9.0]], "kept": ["complete:n=16", "paper:b"],
         "pruned": ["paper:a"], "model_epochs": 14.0, "full_model_epochs": 32,
         "variants_alive": 4}]
    # The whole run: 4 graphs x 1 epoch + 3 x 1 + 2 x 2 = 11 graph-epochs, x 2 seeds; the
    # policy's count over graphs gives the same.
    assert search.model_epochs(40) == 22.0 == 2 * model_epochs(4, [1, 2], [3, 2], 4)


def test_live_search_resumes_with_the_recorded_decisions(tmp_path):
    first = _live(tmp_path)
    first.decide(1, _live_records({0: 10, 1: 12, 2: 5, 3: 7, 4: 20, 5: 21, 6: 30, 7: 30}))
    written = (tmp_path / live.SEARCH_FILE).read_bytes()
    with open(tmp_path / live.SEARCH_FILE, "ab") as f:
        f.write(b'{"epoch": 2, "ranking"')  # a decision torn by a kill
    resumed = _live(tmp_path)
    assert (tmp_path / live.SEARCH_FILE).read_bytes() == written  # torn tail cut
    assert [v.id for v in resumed.alive(10)] == [0, 1, 2, 3, 6, 7]
    # Other scores at the recorded rung (e.g. another machine's rounding): the recorded
    # decision stands, nothing is written twice; epoch 2 is decided anew, once.
    records = _live_records({0: 50, 1: 50, 2: 50, 3: 50, 4: 0, 5: 0, 6: 50, 7: 50})
    assert resumed.decide(1, records) == {4, 5}
    assert records[4]["status"] == "pruned"
    assert (tmp_path / live.SEARCH_FILE).read_bytes() == written
    reader = _live(tmp_path, writer=False)  # another process: reads, never writes
    assert reader.decide(2, _live_records({0: 9, 1: 9, 2: 8, 3: 8, 6: 1, 7: 1})) == {0, 1}
    assert (tmp_path / live.SEARCH_FILE).read_bytes() == written


@pytest.mark.parametrize("content,message", [
    (b"not json\n", "search.jsonl:1: not a search decision"),
    (b'{"epoch": 1, "kept": [], "pruned": []}\n[]\n', "search.jsonl:2: not a search decision"),
    (b'{"epoch": 3, "kept": ["paper:a"], "pruned": []}\n',
     "holds a decision at epoch 3 on graphs paper:a, but this search decides at epochs "
     "[1, 2] on its own graphs; it was written by another sweep"),
    (b'{"epoch": 1, "kept": ["paper:z"], "pruned": []}\n', "written by another sweep"),
])
def test_a_damaged_or_foreign_search_file_is_refused_in_one_line(tmp_path, content, message):
    (tmp_path / live.SEARCH_FILE).write_bytes(content)
    with pytest.raises(ValueError) as error:
        _live(tmp_path)
    assert message in str(error.value) and "\n" not in str(error.value)


# ----------------------------------------------------------------------------- the replay
GRAPHS = ("paper:n64_52/0", "paper:n64_52/1", "paper:n64_52/2", "complete:n=64")  # A B C D
# Test error per (graph, seed) at epochs 1..6 (None: no record).
CURVES = {
    (0, 1): [50, 40, 30, 20, 15, 12], (0, 2): [70, 40, 31, 21, 16, 14],
    (1, 1): [45, 42, 35, 25, 14, 11], (1, 2): [50, 44, 36, 26, 15, 12],
    (2, 1): [60, 38, 28, 22, 16, 13], (2, 2): [52, 38, 29, 23, 12, 9],
    (3, 1): [55, 50, 40, 30, 20, 10], (3, 2): [40, 30, 41, 31, 19, 11],
}
# Final means: A 13, B 11.5, C 11, D 10.5 -> D best; ranks D 1, C 2, B 3, A 4.


def _write_workdir(path, curves=CURVES, epochs=range(1, 7), planned=6, val=None, extra=()):
    os.makedirs(path, exist_ok=True)
    lines = []
    for (g, seed), errors in curves.items():
        for epoch in epochs:
            if errors[epoch - 1] is None:
                continue
            record = {"variant": 2 * g + seed - 1, "epoch": epoch, "graph": GRAPHS[g],
                      "seed": seed, "C": 0.5, "L": 2.0, "test_error": errors[epoch - 1],
                      "status": "ok", "model": "mlp", "hparams": {}}
            if val is not None:
                record["val_error"] = val[g, seed][epoch - 1]
            lines.append(record)
    lines += list(extra)
    with open(os.path.join(path, "results.jsonl"), "w") as f:
        f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in lines)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump({"train": {"epochs": planned}}, f)
    return str(path)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return _write_workdir(tmp_path_factory.mktemp("replay"))


def test_replay_one_deciding_seed_matches_the_hand_computation(workdir):
    # eta=2, first_rung=1, 6 epochs: rungs 1, 2, 4. Seed 1 decides.
    # Rung 1: B 45, A 50, D 55, C 60 -> keep B, A. Rung 2: A 40, B 42 -> keep A. Rung 4: A.
    # Model-epochs 4*1 + 2*1 + 1*2 + 1*2 = 10 of 24. Baseline: 10/24*6 = 2.5 epochs, a tie
    # between 2 and 3 that goes to 2; seed 1 at epoch 2: C 38 best. Full run: D 10 at epoch 6.
    out = replay(load_curves(workdir), HalvingPolicy(eta=2, first_rung=1), decide_seeds=1)
    assert out["metric"] == "test_error" and out["decide_seeds"] == [1]
    assert out["judge_seeds"] == [1, 2] and out["epochs"] == 6 and out["graphs"] == 4
    assert out["rungs"] == [1, 2, 4] and out["alive"] == [2, 1, 1]
    assert out["model_epochs"] == 10 and out["compute_fraction"] == pytest.approx(10 / 24)
    assert out["picked"] == GRAPHS[0] and out["picked_final_error"] == pytest.approx(13.0)
    assert out["picked_rank"] == 4 and out["regret"] == pytest.approx(2.5)
    assert out["best"] == GRAPHS[3] and out["best_final_error"] == pytest.approx(10.5)
    assert out["random_regret"] == pytest.approx((13 + 11.5 + 11 + 10.5) / 4 - 10.5)
    assert out["baseline"] == pytest.approx({
        "epoch": 2, "compute_fraction": 2 / 6, "picked": GRAPHS[2], "picked_final_error": 11.0,
        "picked_rank": 2, "best_final_error": 10.5, "regret": 0.5})
    assert out["full_run"]["picked"] == GRAPHS[3] and out["full_run"]["regret"] == 0.0
    assert out["notes"] == []


def test_replay_all_seeds_decide_and_a_tie_goes_to_the_earlier_graph(workdir):
    # Rung 1 means: A 60, B 47.5, C 56, D 47.5 -> B and D tie, both kept (2 of 4).
    # Rung 2: B 43, D 40 -> D. Baseline epoch 2: A 40, B 43, C 38, D 40 -> C.
    out = replay(load_curves(workdir), HalvingPolicy(eta=2, first_rung=1), decide_seeds=0)
    assert out["decide_seeds"] == [1, 2] and out["alive"] == [2, 1, 1]
    assert out["picked"] == GRAPHS[3] and out["picked_rank"] == 1 and out["regret"] == 0.0
    assert out["baseline"]["picked"] == GRAPHS[2] and out["baseline"]["picked_rank"] == 2
    # eta=4: one rung at 1 keeps ceil(4/4) = 1: the tie B = D goes to B, the earlier graph.
    out = replay(load_curves(workdir), HalvingPolicy(eta=4, first_rung=1), decide_seeds=0)
    assert out["rungs"] == [1, 4] and out["alive"] == [1, 1] and out["picked"] == GRAPHS[1]
    assert out["model_epochs"] == 4 * 1 + 1 * 5 and out["picked_rank"] == 3
    assert out["regret"] == pytest.approx(1.0)


def test_val_error_decides_and_test_error_judges(tmp_path):
    # Validation curves that rank the graphs D, C, B, A at every epoch.
    val = {(g, s): [10.0 * (4 - g)] * 6 for g in range(4) for s in (1, 2)}
    path = _write_workdir(tmp_path, val=val)
    out = replay(load_curves(path), HalvingPolicy(eta=2, first_rung=1), decide_seeds=1)
    assert out["metric"] == "val_error" and out["picked"] == GRAPHS[3]
    assert out["picked_rank"] == 1 and out["baseline"]["picked"] == GRAPHS[3]
    assert replay(load_curves(path, "test_error"), HalvingPolicy(eta=2, first_rung=1),
                  decide_seeds=1)["picked"] == GRAPHS[0]


def test_a_failed_record_ranks_last_and_a_missing_seed_is_left_out(tmp_path):
    failed = {"variant": 2, "epoch": 1, "graph": GRAPHS[1], "seed": 1, "C": 0.5, "L": 2.0,
              "test_error": None, "status": "failed", "model": "mlp", "hparams": {}}
    curves = {**CURVES, (1, 1): [None] + CURVES[1, 1][1:],   # B seed 1 failed at epoch 1
              (2, 2): CURVES[2, 2][:5] + [None]}             # C seed 2 has no final record
    path = _write_workdir(tmp_path, curves=curves, extra=[failed])
    out = replay(load_curves(path), HalvingPolicy(eta=2, first_rung=1), decide_seeds=1)
    # Rung 1: A 50, D 55, C 60, B failed -> keep A, D. Rung 2: A 40, D 50 -> A.
    assert out["alive"] == [2, 1, 1] and out["picked"] == GRAPHS[0]
    # Finals: A 13, B 11.5, C 13 (one seed), D 10.5: A ties C, rank 3.
    assert out["picked_rank"] == 3 and out["regret"] == pytest.approx(2.5)
    assert any("paper:n64_52/2 are means over fewer seeds" in n for n in out["notes"])


@pytest.mark.parametrize("setup,policy,seeds,message", [
    ("none", HalvingPolicy(), 0, "no such directory"),
    ("empty", HalvingPolicy(), 0, "holds no records"),
    ("every2", HalvingPolicy(eta=2, first_rung=1), 0,
     "rung epoch(s) 1 of eta=2, first_rung=1 have no records (evaluated epochs: 2, 4, 6)"),
    ("plain", HalvingPolicy(), 3, "--decide_seeds=3: allowed 0 (all) to 2"),
    ("plain", HalvingPolicy(forced=("complete:n=16",)), 0, "forced graph(s) complete:n=16"),
    ("plain", HalvingPolicy(eta=1), 0, "eta=1: must be an integer >= 2"),
    ("plain", HalvingPolicy(first_rung=6), 0,
     "first_rung=6 decides nothing before the last epoch (6): that is the full run"),
    ("val", HalvingPolicy(), 0, "the records have no val_error"),
    ("loss", HalvingPolicy(), 0, "--metric='test_loss': allowed auto, val_error, test_error"),
    ("unfinished", HalvingPolicy(), 0, "records reach epoch 6 of train.epochs=8"),
    ("pruned", HalvingPolicy(), 0, "made by a live search (1 pruned record(s))"),
    ("mixed", HalvingPolicy(), 0, "the records mix 2 settings"),
    ("nofinal", HalvingPolicy(), 0, "no graph has a finite test error at the last epoch (6)"),
])
def test_bad_input_gets_one_line(tmp_path, setup, policy, seeds, message):
    path = str(tmp_path / "w")
    pruned = {"variant": 9, "epoch": 1, "graph": GRAPHS[0], "seed": 3, "test_error": 1.0,
              "status": "pruned", "hparams": {}, "model": "mlp"}
    other = dict(pruned, status="ok", hparams={"lr": 0.1})
    failed_at_6 = [dict(pruned, variant=2 * g + seed - 1, graph=GRAPHS[g], seed=seed, epoch=6,
                        status="failed", test_error=None) for g, seed in CURVES]
    if setup == "empty":
        os.makedirs(path)
        open(os.path.join(path, "results.jsonl"), "w").close()
    elif setup != "none":
        _write_workdir(path, epochs={"every2": range(2, 7, 2), "nofinal": range(1, 6)}.get(
                           setup, range(1, 7)), planned=8 if setup == "unfinished" else 6,
                       extra={"pruned": [pruned], "mixed": [other],
                              "nofinal": failed_at_6}.get(setup, ()))
    metric = {"val": "val_error", "loss": "test_loss"}.get(setup, "auto")
    with pytest.raises((ValueError, FileNotFoundError)) as error:
        replay(load_curves(path, metric), policy, seeds)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_baseline_epoch_rounds_to_the_nearest_evaluated_epoch():
    assert baseline_epoch(tuple(range(1, 101)), 0.0947) == 9        # 9.47 -> 9
    assert baseline_epoch(tuple(range(1, 101)), 0.095) == 9         # 9.5: tie -> earlier
    assert baseline_epoch(tuple(range(1, 101)), 0.0951) == 10
    assert baseline_epoch((0, 5, 10), 0.01) == 5                    # never epoch 0
    assert baseline_epoch((2, 4, 6), 0.5) == 2                      # 3: tie -> 2


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "experiments.replay_search", *args],
                          capture_output=True, text=True, cwd=REPO)


def test_cli_json_and_tables(workdir, tmp_path):
    done = _cli(f"--workdir={workdir}", "--eta=2,4", "--first_rung=1", "--decide_seeds=1",
                "--json")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["eta"], r["picked"]) for r in rows] == [(2, GRAPHS[0]), (4, GRAPHS[1])]
    assert rows[0] == replay(load_curves(workdir), HalvingPolicy(2, 1), 1)
    twin = tmp_path / os.path.basename(workdir)  # the same runs in a second workdir
    shutil.copytree(workdir, twin)
    done = _cli(f"--workdir={workdir}", f"--workdir={twin}", "--eta=2", "--first_rung=1",
                "--decide_seeds=1")
    assert done.returncode == 0, done.stderr
    row = f"| {os.path.basename(workdir)} | 2 | 1 | 1 | 41.7 % | 4 | 2.500 | 2 | 2 | 0.500 |"
    assert done.stdout.count(row) == 2
    assert "| 2 | 1 | 1 | 41.7 % | 2.500 | 0.500 | 0.000 | 1.000 |" in done.stdout


def test_cli_bad_input_is_one_line_without_traceback(workdir):
    done = _cli(f"--workdir={workdir}", "--eta=1")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.strip() == ("experiments.replay_search: --eta=1: must be an integer "
                                   ">= 2 (the factor by which each rung cuts the graphs)")
    done = _cli(f"--workdir={workdir}", "--eta=", "--first_rung=1,x")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.strip() == ("experiments.replay_search: --eta='': must be a comma list "
                                   "of integers")
    done = _cli(f"--workdir={workdir}", f"--workdir={workdir}/.")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.strip() == (f"experiments.replay_search: --workdir={workdir}/. names the "
                                   f"same folder as --workdir={workdir}: each workdir would "
                                   "count twice in the means; give each once")
    done = _cli("--workdir=/nonexistent/w")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.strip() == ("experiments.replay_search: --workdir=/nonexistent/w: no "
                                   "such directory")
