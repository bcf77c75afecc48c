"""``python -m realtime bench``: the quick grid runs here, its JSON follows the published
schema, rows check outputs against the authors' formulation, and --compare reads it back."""

from __future__ import annotations

import importlib.util
import json

import jsonschema
import pytest

from helpers import ROOT, run_cli

pytestmark = pytest.mark.slow

OPENVINO = importlib.util.find_spec("openvino") is not None
# --quick on a CPU: the cpu backend's three units, and OpenVINO's factored one when installed
QUICK_ROWS = [("cpu", "reference"), ("cpu", "factored"), ("cpu", "kernel")] + (
    [("openvino", "factored")] if OPENVINO else [])


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    done = run_cli("realtime", "bench", "--quick", "--quiet", "--json", folder / "bench.json",
                   timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return folder, done


def test_quick_json_follows_the_schema(quick):
    folder, _ = quick
    result = json.loads((folder / "bench.json").read_text())
    schema = json.loads((ROOT / "benchmarks" / "bench.schema.json").read_text())
    jsonschema.validate(result, schema)
    assert [(r["backend"], r["impl"]) for r in result["results"]] == QUICK_ROWS
    assert {r["pipeline"] for r in result["end_to_end"]} == {"annotate", "live"}
    # end to end runs what a plain `live` or `annotate` gets: auto's choice
    default = "openvino (cpu) fp32" if OPENVINO else "cpu (cpu) fp32"
    assert {r["backend"] for r in result["end_to_end"]} == {default}


@pytest.mark.parametrize("published", sorted((ROOT / "benchmarks" / "results").glob("bench_*.json")),
                         ids=lambda p: p.name)
def test_published_results_follow_the_schema(published):
    schema = json.loads((ROOT / "benchmarks" / "bench.schema.json").read_text())
    jsonschema.validate(json.loads(published.read_text()), schema)


def test_rows_have_identical_outputs_and_speedups_against_the_reference(quick):
    folder, _ = quick
    rows = json.loads((folder / "bench.json").read_text())["results"]
    for row in rows:
        # the check frame shows a polyp: the masks compared are not two empty ones (before:
        # a polyp-free frame, max probability 6e-6, Dice 1.0 by the both-empty rule)
        assert 0.01 < row["foreground"] < 0.5
        assert row["max_prob_diff"] < 1e-4 and row["mask_dice"] > 0.999
        assert row["latency_ms"]["p99"] >= row["latency_ms"]["p50"]
        assert row["fps"] == pytest.approx(1000 / row["latency_ms"]["p50"])
    assert rows[0]["speedup"] == 1.0


def test_markdown_table_and_plot(quick):
    folder, done = quick
    header = "| model | backend | precision | batch | size | impl | fps |"
    assert header in done.stdout and "| demo | cpu | fp32 | 1 | 256 | kernel |" in done.stdout
    png = (folder / "bench.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_compare_prints_ratios_per_row(quick, tmp_path):
    """Against an older run whose rows were half and twice as fast (and one it lacks): the
    ratio is new over old, per row, and rows missing from the old run are left out."""
    import copy
    folder, _ = quick
    from realtime.bench import compare
    new = json.loads((folder / "bench.json").read_text())
    old = copy.deepcopy(new)
    old["results"][0]["fps"] = new["results"][0]["fps"] / 2    # new is 2x faster
    old["results"][1]["fps"] = new["results"][1]["fps"] * 2    # new is 2x slower
    del old["results"][2]
    lines = compare(new, old).splitlines()
    rows = [line for line in lines if line.startswith("| demo |")]
    assert len(rows) == len(QUICK_ROWS) - 1
    assert rows[0].endswith("| 2.00× |") and rows[1].endswith("| 0.50× |")
    assert f"{old['results'][0]['fps']:.1f} | {new['results'][0]['fps']:.1f}" in rows[0]
    assert all(row.endswith("| 1.00× |") for row in rows[2:])


def test_bad_grid_values_fail_in_one_line(tmp_path):
    done = run_cli("realtime", "bench", "--sizes", "300", "--json", tmp_path / "b.json")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == \
        "error: sizes must be positive multiples of 32, got 300"


def test_openvino_rows_interleave_with_the_cpu_and_use_its_reference(tmp_path):
    pytest.importorskip("openvino")
    done = run_cli("realtime", "bench", "--models", "demo", "--backends", "cpu,openvino",
                   "--impls", "reference,factored,kernel", "--sizes", "128", "--batches", "1",
                   "--repeats", "3", "--warmup", "1", "--e2e-height", "0", "--quiet",
                   "--json", tmp_path / "b.json", timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads((tmp_path / "b.json").read_text())["results"]
    # openvino converts standard operators only: it runs the factored unit, nothing else
    assert [(r["backend"], r["impl"]) for r in rows] == [
        ("cpu", "reference"), ("cpu", "factored"), ("cpu", "kernel"), ("openvino", "factored")]
    reference, openvino = rows[0], rows[-1]
    assert openvino["max_prob_diff"] < 1e-4 and openvino["mask_dice"] > 0.999
    assert openvino["speedup"] == pytest.approx(openvino["fps"] / reference["fps"])


def test_a_failed_end_to_end_run_keeps_the_grid(tmp_path, monkeypatch):
    """A full disk or a broken encoder cannot be made to happen here: end_to_end is patched
    to fail the way they would."""
    from argparse import Namespace

    from realtime import bench

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(bench, "end_to_end", broken)
    out = tmp_path / "b.json"
    args = Namespace(models=["demo"], backends=["cpu"], precisions=["fp32"], batches=[1],
                     sizes=[64], impls=["factored"], repeats=2, warmup=1, e2e_height=360,
                     e2e_seconds=1.0, quiet=True, json=str(out), plot=None, compare=None)
    assert bench.main(args) == 0
    result = json.loads(out.read_text())
    jsonschema.validate(result, json.loads((ROOT / "benchmarks" / "bench.schema.json").read_text()))
    assert result["results"][0]["fps"] > 0
    assert result["end_to_end"] == [{"pipeline": "end_to_end", "backend": "cpu",
                                     "error": "[Errno 28] No space left on device"}]


def test_tiny_end_to_end_video_is_refused_in_one_line(tmp_path):
    done = run_cli("realtime", "bench", "--e2e-height", "1", "--json", tmp_path / "b.json")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == \
        "error: --e2e-height must be 0 (no end-to-end run) or at least 64, got 1"
