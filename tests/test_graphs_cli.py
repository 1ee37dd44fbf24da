"""python -m relgraph_jax.graphs: describe, sweep, sample, plot."""
import csv
import json

import numpy as np
import pytest

from relgraph_jax.graphs import catalog
from relgraph_jax.graphs.__main__ import main
from relgraph_jax.graphs.design_space import DesignSpace


def _lines(capsys):
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_describe_prints_json_per_graph(capsys):
    main(["describe", "paper:n64_52/27", "edges:n=4,0-1,2-3"])
    best, split = _lines(capsys)
    row = catalog.paper_graph("n64_52", 27)
    assert best["n"] == 64 and best["C"] == pytest.approx(row.C, abs=1e-9)
    assert best["L"] == pytest.approx(row.L, abs=1e-9)
    assert best["density"] == (2 * best["edges"] + 64) / 64 ** 2
    assert split == {"spec": "edges:n=4,0-1,2-3", "name": "edges:n=4,0-1,2-3", "n": 4,
                     "directed": False, "edges": 2, "density": (2 * 2 + 4) / 16, "C": 0.0, "L": None,
                     "connected": False}
    main(["describe", "paper:n16_48"])
    assert len(_lines(capsys)) == 48


def test_describe_bad_spec_exits_with_the_reason(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["describe", "ws:n=64,k=99,p=0.1,seed=0"])
    assert stop.value.code == 2
    assert "must lie in [2, n] = [2, 64], got 99.0" in capsys.readouterr().err


def test_sweep_sample_and_plot_write_their_files(tmp_path, capsys):
    space_path, csv_path, png_path = tmp_path / "s.npz", tmp_path / "g.csv", tmp_path / "p.png"
    main(["sweep", "--n", "16", "--num-k", "4", "--num-p", "6", "--replicates", "2",
          "--workers", "1", "--out", str(space_path)])
    summary = _lines(capsys)[0]
    space = DesignSpace.load(space_path)
    assert summary["graphs"] == len(space.C) == 48 and space.n == 16
    assert np.isfinite(space.C).all()
    main(["sample", "--space", str(space_path), "--out", str(csv_path)])
    rows = list(csv.DictReader(open(csv_path)))
    assert len(rows) == _lines(capsys)[0]["graphs"] > 0
    assert rows[0]["spec"].startswith("ws:n=16,")
    main(["plot", "--space", str(space_path), "--out", str(png_path)])
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, message", [
    (["sweep", "--out", "MISSING/s.npz"], "--out 'MISSING/s.npz': folder 'MISSING' does not exist"),
    (["sweep", "--out", "TMP"], "--out 'TMP' is a folder; give a file name"),
    (["sweep", "--num-k", "0", "--out", "TMP/s.npz"], "argument --num-k: 0 is not a positive "
                                                       "integer"),
    (["sweep", "--replicates", "-1", "--out", "TMP/s.npz"], "argument --replicates: -1 is not"),
    (["sample", "--space", "TMP/none.npz", "--out", "TMP/g.csv"], "--space 'TMP/none.npz' not found"),
    (["sample", "--space", "TMP/text.npz", "--out", "TMP/g.csv"],
     "--space 'TMP/text.npz' is not an .npz written by"),
    (["plot", "--space", "TMP/other.npz", "--out", "TMP/p.png"],
     "--space 'TMP/other.npz' is not a sweep written by"),
    (["plot", "--out", "MISSING/p.png"], "folder 'MISSING' does not exist"),
])
def test_bad_paths_and_counts_get_one_line_before_any_work(args, message, tmp_path, capsys):
    (tmp_path / "text.npz").write_text("not a zip")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    missing = str(tmp_path / "missing")
    args = [a.replace("MISSING", missing).replace("TMP", str(tmp_path)) for a in args]
    with pytest.raises(SystemExit) as stop:
        main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1
    assert message.replace("MISSING", missing).replace("TMP", str(tmp_path)) in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.npz", "text.npz"]
