"""The benchmark scripts run and record what they measured (tiny settings; no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(script, *args):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_model_cost_records_flops_and_latency(tmp_path):
    out = tmp_path / "cost.json"
    _run("model_cost.py", "--size", "64", "--repeats", "2", "--warmup", "0", "--json", str(out))
    result = json.loads(out.read_text())
    dense, factored = result["results"]["dense"], result["results"]["factored"]
    # FLOPs are exact counts: the factored unit removes the C*C*k*k convolutions.
    assert 1.8 < dense["gflops"] / factored["gflops"] < 2.1
    assert result["machine"]["torch"] and result["size"] == 64
    assert dense["median_ms"] > 0 and factored["speedup_vs_dense"] > 0


def test_msu_ops_records_every_real_size(tmp_path):
    out = tmp_path / "ops.json"
    _run("msu_ops.py", "--device", "cpu", "--impls", "composite,numba", "--repeats", "1",
         "--warmup", "1", "--json", str(out))
    result = json.loads(out.read_text())
    assert [r["b"][-1] for r in result["rows"]] == [22, 44, 88, 88]
    for row in result["rows"]:
        assert set(row["median_us"]) == {"composite", "numba"}
        assert row["predicted_fused_speedup"] > 1


def test_cpu_ceiling_times_every_convolution(tmp_path):
    out = tmp_path / "ceiling.json"
    _run("cpu_ceiling.py", "--variant", "m2snet-light", "--size", "64", "--repeats", "2",
         "--json", str(out))
    result = json.loads(out.read_text())
    ov = result["openvino"]
    # OpenVINO's node names are mapped back to the model's convolution modules: all of them.
    assert ov["conv_layers_timed"] == ov["conv_layers_in_model"] > 50
    assert 0 < ov["conv_gflop"] <= ov["gflop"] < result["authors"]["gflop"]
    assert result["matmul_gflop_per_s"] > 0 and result["floor"]["ms"] <= ov["conv_ms"] + sum(
        ov["other_ms_by_type"].values()) + 1e-6


def test_preprocess_times_both_paths_and_states_their_error(tmp_path):
    out = tmp_path / "preprocess.json"
    _run("preprocess.py", "--sizes", "120x160,37x53", "--repeats", "2", "--json", str(out))
    rows = json.loads(out.read_text())["rows"]
    assert [(r["height"], r["width"]) for r in rows] == [(120, 160), (37, 53)]
    for row in rows:
        assert set(row["median_ms"]) == {"torch", "resample"} and row["speedup"] > 0
        assert row["max_level_error_vs_float64"]["resample"] < 1e-3
        assert row["max_level_difference"] < 0.02


def test_frame_stages_times_each_stage_alone_and_beside_a_busy_thread(tmp_path):
    out = tmp_path / "stages.json"
    printed = _run("frame_stages.py", "--backend", "cpu", "--height", "144", "--repeats", "2",
                   "--switch-intervals", "0.005,0.0005", "--json", str(out))
    result = json.loads(out.read_text())
    assert result["size"] == "256x144" and result["backend"].startswith("cpu")
    stages = result["median_ms"]
    assert set(stages) == {"upload", "resize_normalize", "network", "to_frame_size_threshold",
                           "download", "analyze", "whole_call", "foreground",
                           "whole_call_with_busy_thread_switch_5ms",
                           "whole_call_with_busy_thread_switch_0.5ms"}
    assert all(v > 0 for k, v in stages.items() if k.startswith(("network", "whole_call")))
    assert "whole_call_with_busy_thread_switch_0.5ms" in printed


def test_clinical_procedures_scores_each_model_and_alert_setting(tmp_path):
    out = tmp_path / "clinical.json"
    _run("clinical_procedures.py", "--seeds", "4", "--seconds", "8", "--size", "160",
         "--backend", "cpu", "--alerts", "3/5:3:off,1/1:1", "--work", str(tmp_path / "work"),
         "--json", str(out))
    result = json.loads(out.read_text())
    assert result["procedures"] == ["procedure4"] and len(result["rows"]) == 2
    strict, every = (row["report"] for row in result["rows"])
    assert strict["alerts_replayed"] == {"raise_after": 3, "window": 5, "hold": 3,
                                         "sure_score": None, "sure_masks": 2}
    assert every["alerts"]["summary"] == every["masks"]["summary"]  # 1 of 1, hold 1: the masks
    assert strict["masks"]["summary"]["frames"] == 240


def test_compile_threads_reports_each_batch_size_from_annotate_then_live(tmp_path):
    out = tmp_path / "threads.json"
    printed = _run("compile_threads.py", "--backend", "cpu", "--batches", "1,3", "--height",
                   "144", "--seconds", "0.5", "--json", str(out))
    runs = json.loads(out.read_text())["runs"]
    assert [r["batch"] for r in runs] == [1, 3] and not any("error" in r for r in runs)
    for run in runs:
        annotate, live = run["rows"]
        assert annotate["pipeline"] == "annotate" and annotate["batch"] == run["batch"]
        assert annotate["frames"] == 15 and live["pipeline"] == "live"
    assert "batch 3: live cpu" in printed
