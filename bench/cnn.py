"""Benchmark of the planar CNN (issue 10, item 5): threshold-only vs CNN-only vs fused.

    .venv/bin/python bench/cnn.py [-n 20] [--first-seed 1] [--weights PATH]

Held-out cohort: planar phantom studies with seeds ``first-seed`` .. ``first-seed + n - 1``
(< 1,000,000; training studies use phantom seeds >= 1,000,000, see
``octoscan.models.cnn_data.TRAINING_SEED_OFFSET``), default geometry (1024 x 256, 2.4 mm),
count levels drawn log-uniform in 5e5-4e6, lesion profile "mixed".

Matching as in ``bench/accuracy.py``: a detection matches a truth lesion when its centre
lies within max(10 mm, the lesion's projected radius) of the truth centre, one-to-one,
greedily by distance. Sensitivity over truth-visible lesions (all, and < 20 mm projected
diameter); false positives per study (unmatched detections); Dice of liver and spleen
masks against the projected phantom labels (:func:`octoscan.models.cnn_data.planar_labels`),
for the CNN and for the threshold scorer's organ masks; grade agreement (exact, with truth's
apparent planar grade, over the detected visible lesions) and decision agreement (with
truth's expected planar decision, :func:`octoscan.pipelines.phantom_truth.compose_truth`)
of threshold-only and fused (the network alone does not grade); decision agreement between
fused and threshold-only; CNN inference time per study (normalisation, network, resampling back; one
torch thread). Prints a table and one ``JSON {...}`` line.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import evaluate_study

from octoscan.imaging.phantom.study import StudySpec, describe_study, simulate_study
from octoscan.models.cnn_data import planar_images, planar_labels
from octoscan.models.cnn_fusion import FusionConfig, cnn_components, fuse_lesions
from octoscan.models.cnn_infer import load_model, predict
from octoscan.models.cnn_model import CLASSES, IGNORE_INDEX, LESION_CLASS, import_torch
from octoscan.models.config import load_config
from octoscan.models.planar_score import score_planar
from octoscan.pipelines.phantom_truth import compose_truth

MATCH_MIN_MM = 10.0
SMALL_MM = 20.0


def _match(dets: list[tuple[float, float]], truths: list[Any], pixel_mm: float) -> set[int]:
    """Indices of matched truth lesions (greedy one-to-one by distance)."""
    pairs = []
    for i, t in enumerate(truths):
        limit = max(MATCH_MIN_MM, t.projected_diameter_mm / 2.0)
        for j, d in enumerate(dets):
            dist = math.hypot(d[0] - t.center_rc[0], d[1] - t.center_rc[1]) * pixel_mm
            if dist <= limit:
                pairs.append((dist, i, j))
    used_t: set[int] = set()
    used_d: set[int] = set()
    for _, i, j in sorted(pairs):
        if i not in used_t and j not in used_d:
            used_t.add(i)
            used_d.add(j)
    return used_t


def _dice(a: np.ndarray, b: np.ndarray) -> float | None:
    s = int(a.sum()) + int(b.sum())
    return None if s == 0 else 2.0 * int((a & b).sum()) / s


def run(n: int, first_seed: int, weights: str | None) -> dict[str, Any]:
    torch = import_torch()
    torch.set_num_threads(1)
    config = load_config("default")
    model = load_model(weights)
    fusion = FusionConfig()
    stats: dict[str, Any] = {
        k: {"tp": 0, "tp_small": 0, "fp": 0, "all_tp": 0} for k in ("threshold", "cnn", "fused")
    }
    n_vis = n_vis_small = n_all = 0
    dice: dict[str, list[float]] = {
        "cnn_liver": [],
        "cnn_spleen": [],
        "thr_liver": [],
        "thr_spleen": [],
    }
    times: list[float] = []
    decisions_agree = 0
    # grade (exact, against truth's apparent planar grade, detected visible lesions) and
    # decision (against truth's expected planar decision) of the two graded methods
    graded: dict[str, list[int]] = {"threshold": [0, 0], "fused": [0, 0]}
    decided: dict[str, list[int]] = {"threshold": [0, 0], "fused": [0, 0]}
    rng = np.random.default_rng(first_seed)
    for seed in range(first_seed, first_seed + n):
        counts = float(math.exp(rng.uniform(math.log(5e5), math.log(4e6))))
        study = simulate_study(StudySpec(seed=seed, kind="planar", counts=counts))
        idx = study.primary_planar_index
        assert idx is not None
        tp = study.planar[idx]
        pixel_mm = tp.simulation.geometry.pixel_mm
        score = score_planar(list(planar_images(study, idx)), config)
        t0 = time.perf_counter()
        pred = predict(score, model=model)
        times.append(time.perf_counter() - t0)
        fused = fuse_lesions(score, pred, config, fusion=fusion)
        exclude = np.zeros(score.scoring_image.shape, dtype=bool)
        for organ in score.organs:
            physiological = organ.organ in ("spleen", "kidney_left", "kidney_right", "bladder")
            if physiological and organ.mask is not None:
                exclude |= organ.mask
        comps = cnn_components(
            pred.probabilities[LESION_CLASS],
            spacing_mm=score.pixel_spacing_mm,
            exclude=exclude,
            fusion=fusion,
        )
        cnn_dets = []
        for comp in comps:
            flat = int(np.argmax(np.where(comp, score.scoring_image, -np.inf)))
            cnn_dets.append((flat // comp.shape[1], flat % comp.shape[1]))
        dets = {
            "threshold": [les.center_rc for les in score.lesions],
            "cnn": cnn_dets,
            "fused": [les.center_rc for les in fused.lesions],
        }
        visible = [t for t in tp.lesions if t.visible]
        small = [t for t in visible if t.projected_diameter_mm < SMALL_MM]
        n_vis += len(visible)
        n_vis_small += len(small)
        n_all += len(tp.lesions)
        for key, d in dets.items():
            matched_all = _match(d, list(tp.lesions), pixel_mm)
            matched_vis = _match(d, visible, pixel_mm)
            matched_small = _match(d, small, pixel_mm)
            stats[key]["tp"] += len(matched_vis)
            stats[key]["tp_small"] += len(matched_small)
            stats[key]["all_tp"] += len(matched_all)
            stats[key]["fp"] += len(d) - len(matched_all)
        truth = planar_labels(study, idx)
        keep = truth != IGNORE_INDEX
        for organ in ("liver", "spleen"):
            t_mask = (truth == CLASSES.index(organ)) & keep
            value = _dice(pred.mask(organ) & keep, t_mask)
            if value is not None:
                dice[f"cnn_{organ}"].append(value)
            thr = next((o for o in score.organs if o.organ == organ), None)
            if thr is not None and thr.mask is not None:
                value = _dice(thr.mask & keep, t_mask)
                if value is not None:
                    dice[f"thr_{organ}"].append(value)
        decisions_agree += int(fused.decision.status == score.decision.status)
        truth_doc = compose_truth(describe_study(study), config)
        for key, result in (("threshold", score), ("fused", fused)):
            record = evaluate_study(str(seed), "", truth_doc, result, seconds=0.0)
            pairs = [
                (les["apparent_grade"], les["grade"])
                for les in record["lesions"]
                if les["visible"] and les["detected"] and les["apparent_grade"] is not None
            ]
            graded[key][0] += sum(a == g for a, g in pairs)
            graded[key][1] += len(pairs)
            if record["expected_status"] is not None:
                decided[key][0] += int(record["status"] == record["expected_status"])
                decided[key][1] += 1
    out: dict[str, Any] = {
        "studies": n,
        "seeds": [first_seed, first_seed + n - 1],
        "lesions": n_all,
        "visible": n_vis,
        "visible_small": n_vis_small,
        "weights_sha256": model.sha256,
    }
    for key, s in stats.items():
        out[key] = {
            "sensitivity_visible": round(s["tp"] / n_vis, 3) if n_vis else None,
            "sensitivity_visible_lt20mm": round(s["tp_small"] / n_vis_small, 3)
            if n_vis_small
            else None,
            "fp_per_study": round(s["fp"] / n, 2),
        }
    for key in ("threshold", "fused"):
        ok, total = graded[key]
        out[key]["grade_exact_apparent"] = round(ok / total, 3) if total else None
        ok, total = decided[key]
        out[key]["decision_agreement_truth"] = round(ok / total, 3) if total else None
    out["cnn"]["grade_exact_apparent"] = None  # the network does not grade
    out["cnn"]["decision_agreement_truth"] = None
    out["dice"] = {k: round(float(np.mean(v)), 3) if v else None for k, v in dice.items()}
    out["decision_agreement_fused_vs_threshold"] = round(decisions_agree / n, 3)
    out["cnn_inference_s_median"] = round(float(np.median(times)), 3)
    out["cnn_inference_s_max"] = round(float(np.max(times)), 3)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=20)
    p.add_argument("--first-seed", type=int, default=1)
    p.add_argument("--weights", default=None)
    args = p.parse_args(argv)
    if not 0 < args.first_seed < 1_000_000 - args.n:
        p.error("held-out seeds must stay below 1,000,000 (training seeds)")
    res = run(args.n, args.first_seed, args.weights)
    print(
        f"{'method':<10} {'sens(vis)':>9} {'sens(<20mm)':>11} {'FP/study':>9} "
        f"{'grade=app':>9} {'decision':>9}"
    )
    for key in ("threshold", "cnn", "fused"):
        r = res[key]
        print(
            f"{key:<10} {r['sensitivity_visible']!s:>9} {r['sensitivity_visible_lt20mm']!s:>11} "
            f"{r['fp_per_study']!s:>9} {r['grade_exact_apparent']!s:>9} "
            f"{r['decision_agreement_truth']!s:>9}"
        )
    print(
        f"Dice {res['dice']}; fused decision = threshold-only decision: "
        f"{res['decision_agreement_fused_vs_threshold']}"
    )
    print(f"CNN inference per study: median {res['cnn_inference_s_median']} s")
    print("JSON " + json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
