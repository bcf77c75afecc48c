"""Phantom procedures and the clinical evaluation of videos: the ground truth is what it says,
our frame and lesion numbers equal TRUE-Colon's (the package itself, not a copy), and the
COCO results join the ground truth frame by frame (a join off by one frame fails)."""

import json

import av
import numpy as np
import pytest

from m2snet.phantom_procedure import ANNOTATED_FRACTION, Procedure
from realtime.evaluation.clinical import VideoRun, clinical_summary, true_colon
from realtime.evaluation.truth import load_truth
from tests.helpers import run_cli


@pytest.fixture(scope="module")
def procedure(tmp_path_factory):
    """An 8 s procedure (a polyp-free stretch, then a polyp entering), annotated by the demo
    model with COCO files."""
    folder = tmp_path_factory.mktemp("procedure")
    made = run_cli("m2snet", "phantom", "--procedure", "8", "--seed", "4", "--size", "192",
                   "--out", folder, "--quiet")
    assert made.returncode == 0, made.stderr
    done = run_cli("realtime", "annotate", folder / "procedure4.mp4", "--backend", "cpu",
                   "--out", folder / "out", "--coco", "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    return folder


def frames_of(folder):
    return [json.loads(line) for line in (folder / "frames.jsonl").read_text().splitlines()]


def test_a_procedure_is_its_plan_with_lesions_annotated_once_visible(procedure):
    plan = Procedure(seed=4, seconds=8, fps=30, size=192)
    assert [s.kind for s in plan.stretches] == ["clear", "polyp"]
    assert sum(s.frames for s in plan.stretches) == 240
    truth = load_truth(procedure / "procedure4.truth.json")
    with av.open(str(procedure / "procedure4.mp4")) as video:
        assert sum(1 for _ in video.decode(video=0)) == truth.frames == 240
    assert [i["id"] for i in truth.coco["images"]] == list(range(1, 241))
    assert truth.coco["images"][17]["file_name"] == "procedure4_000017.png"
    polyp = plan.stretches[1]
    annotated = sorted(truth.annotations)
    assert annotated[0] > polyp.first_frame, "the polyp enters: not in view at the cut"
    assert all(i >= polyp.first_frame for i in annotated)
    for index, image, lesions in plan.frames():  # the same frames, seeded, and masks
        if index in (annotated[0], annotated[0] - 1):
            union = np.zeros((192, 192), bool)
            for mask in lesions.values():
                union |= mask
            assert (union == truth.mask(index)).all()
            assert (index == annotated[0]) == bool(lesions)
            if lesions:
                assert min(m.sum() for m in lesions.values()) >= ANNOTATED_FRACTION * 192 ** 2
    lesion_ids = {a["unique_id"] for a in truth.coco["annotations"]}
    assert len(lesion_ids) == 1 and lesion_ids.pop().startswith("procedure4_L01")  # stretch 1


def test_perfect_and_late_detections_score_as_they_should_in_ours_and_true_colon(procedure):
    """Runs made from the ground truth itself: on time, TPR 1 and FPR 0; five frames late,
    each lesion's latency is 5 in our summary and in TRUE-Colon's lesion tier."""
    truth = load_truth(procedure / "procedure4.truth.json")
    negatives = truth.frames - len(truth.annotations)
    for delay in (0, 5):
        frames = []
        for index in range(truth.frames):
            source = truth.annotations.get(index - delay, []) if index >= delay else []
            regions = [{"box": [x, y, x + w, y + h], "score": 0.9, "track": 1}
                       for x, y, w, h in (a["bbox"] for a in source)]
            if 10 <= index < 14:  # a spurious detection in the polyp-free stretch
                regions = [{"box": [5, 5, 20, 20], "score": 0.6, "track": None}]
            frames.append({"index": index, "regions": regions, "alert": bool(regions)})
        run = VideoRun(procedure, frames, truth)
        ours, theirs = clinical_summary([run], "masks"), true_colon([run], "masks")
        assert ours["latency_frames"] == [delay]
        assert theirs["lesion"]["summary"]["mean_latency_frames"] == delay
        assert ours["frame_fpr"] == theirs["frame"]["fpr"] == 4 / negatives
        assert ours["frame_tpr"] == pytest.approx(theirs["frame"]["tpr"])
        assert (ours["frame_tpr"] == 1) == (delay == 0)
        assert ours["false_alert_episodes"] == 1  # the spurious run; the late one was on it


def test_coco_results_join_the_truth_frame_by_frame_in_pycocotools_and_true_colon(procedure):
    import true_colon as tc
    from pycocotools.coco import COCO

    folder = procedure / "out" / "procedure4"
    truth_path = procedure / "procedure4.truth.json"
    gt = COCO(str(truth_path))
    results = json.loads((folder / "coco_results.json").read_text())
    assert results, "the demo model finds the polyp"
    assert len(gt.loadRes(str(folder / "coco_results.json")).getAnnIds()) == len(results)

    run = VideoRun(folder, frames_of(folder), load_truth(truth_path))
    ours = clinical_summary([run], "masks")
    evaluator = tc.create_evaluator(None, canonicalizer="stem_int_suffix",
                                    id_source="gt_integer", conf=0.001)

    def frame_tier(predictions):
        return evaluator.evaluate(json.loads(truth_path.read_text()), predictions).frame

    right = frame_tier(results)
    assert (right.tpr, right.fpr) == pytest.approx((ours["frame_tpr"], ours["frame_fpr"]))
    # the old numbering's mistake: ids counted only the frames with a polyp
    renumber = {image: n + 1 for n, image in enumerate(sorted({r["image_id"] for r in results}))}
    wrong = frame_tier([{**r, "image_id": renumber[r["image_id"]]} for r in results])
    assert (wrong.tpr, wrong.fpr) != pytest.approx((ours["frame_tpr"], ours["frame_fpr"]))


def test_evaluate_command_prints_both_columns_and_writes_the_report(procedure, tmp_path):
    report = tmp_path / "report.json"
    done = run_cli("realtime", "evaluate", procedure / "out" / "procedure4", "--truth",
                   procedure, "--out", report)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| frame FPR |" in done.stdout and "| raw masks | alerts |" in done.stdout
    data = json.loads(report.read_text())
    for kind in ("masks", "alerts"):
        ours, theirs = data[kind]["summary"], data[kind]["true_colon"]
        assert ours["frame_tpr"] == pytest.approx(theirs["frame"]["tpr"])
        assert ours["frame_fpr"] == pytest.approx(theirs["frame"]["fpr"])
        assert ours["frames"] == 240 and ours["lesions"] == 1
    assert data["pixels"]["lesion_frames"]["images"] == data["masks"]["summary"]["lesion_frames"]
    # an alert is raised on a frame with a region and then shows the regions or holds the
    # last ones: every lesion-free frame with the alert on is one false-alert frame
    annotated = set(load_truth(procedure / "procedure4.truth.json").annotations)
    alert_on = [f["index"] for f in frames_of(procedure / "out" / "procedure4") if f["alert"]]
    assert data["alerts"]["true_colon"]["frame"]["fp"] == \
        len([i for i in alert_on if i not in annotated])


def test_evaluate_refuses_a_truth_of_another_video_in_one_line(procedure, tmp_path):
    other = tmp_path / "other.truth.json"
    truth = json.loads((procedure / "procedure4.truth.json").read_text())
    truth["images"] = truth["images"][:100]
    truth["annotations"] = [a for a in truth["annotations"] if a["image_id"] <= 100]
    other.write_text(json.dumps(truth))
    run = procedure / "out" / "procedure4"
    cases = [(other, "has 240 frames but"), (tmp_path / "none.json", "no such file"),
             (tmp_path, "no ground truth for 1 run(s)")]
    for truth_path, message in cases:
        done = run_cli("realtime", "evaluate", run, "--truth", truth_path)
        assert done.returncode == 1 and message in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def test_replaying_the_alert_filter_reproduces_the_run_and_scores_other_settings(procedure):
    """The same setting replayed over the run's masks gives the alerts it recorded; another
    setting changes the alerts column only."""
    from realtime.evaluation.report import evaluate
    from realtime.pipeline.alerts import AlertSettings
    pairs = [(procedure / "out" / "procedure4", procedure / "procedure4.truth.json")]
    recorded = evaluate(pairs, pixels=False)
    same = evaluate(pairs, pixels=False, alerts=AlertSettings())  # annotate's default
    assert same["alerts"] == recorded["alerts"] and same["masks"] == recorded["masks"]
    eager = evaluate(pairs, pixels=False, alerts=AlertSettings(1, 1, 1))  # every mask
    assert eager["masks"] == recorded["masks"]
    assert eager["alerts"]["summary"]["frame_fpr"] == recorded["masks"]["summary"]["frame_fpr"]
    assert eager["alerts"]["summary"]["frame_tpr"] == recorded["masks"]["summary"]["frame_tpr"]
