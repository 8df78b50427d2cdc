"""Benchmark: time per stage of one planar study and one SPECT/CT study, and peak memory.

    .venv/bin/python bench/stage_times.py [--repeats 3] [--work DIR]

Data: ``octoscan phantom --kind planar`` and ``octoscan phantom --kind spect-ct`` (seed 1, the
default CT length) under ``WORK/stages``. Imports are timed first, in this process (the cost a
fresh worker pays once), then every stage runs once to warm up and ``repeats`` times more
(median), as in a warm worker:

* planar: discovery (:func:`discover`), load (:func:`load_planar` of the planar series),
  references + lesions + grading (:func:`score_planar`), result (result.json dict and bytes,
  :func:`score_series` minus its own load and score), overlays (PNG), report page (HTML),
  DICOM results (SR, SEG, SC as bytes; the SC shows the overlay stage's summary panel,
  which :func:`render_planar_overlays` hands over without drawing it again, as in a batch);
* SPECT/CT: discovery, load (:func:`load_spect` + :func:`load_ct`), references + lesions +
  grading (:func:`score_tomographic`, called directly with the default rule set's ``[tomo]``
  tables), overlays
  (:func:`render_volume_overlays` and PNG encoding).

Peak RSS is this process's maximum resident set after all stages. Targets of the issue: a
planar study <= 2 s end to end in a warm worker (imports excluded), a SPECT/CT study <= 10 s,
peak RSS per worker <= 2 GiB.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit_json, median, peak_rss_mib, print_table, run_octoscan, work_dir

STAGE_ORDER = ("discovery", "load", "score", "result", "overlays", "report", "dicom")


def _timed_imports() -> dict[str, float]:
    out = {}
    t0 = time.perf_counter()
    import numpy  # noqa: F401
    import pydicom  # noqa: F401

    out["numpy+pydicom"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    import octoscan.imaging.discovery
    import octoscan.imaging.planar
    import octoscan.imaging.volume

    out["octoscan.imaging"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    import octoscan.models.planar_score
    import octoscan.models.tomo_score

    out["octoscan.models"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    import octoscan.pipelines.batch
    import octoscan.pipelines.overlays
    import octoscan.pipelines.report  # noqa: F401

    out["octoscan.pipelines"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    import highdicom  # noqa: F401

    out["highdicom (DICOM results)"] = time.perf_counter() - t0
    return out


def _stage(times: dict[str, list[float]], name: str, fn):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    value = fn()
    times.setdefault(name, []).append(time.perf_counter() - t0)
    return value


def _planar_once(study: Path, times: dict[str, list[float]]) -> None:
    from octoscan.imaging.discovery import discover
    from octoscan.imaging.planar import load_planar
    from octoscan.models.config import load_config
    from octoscan.models.planar_score import score_planar
    from octoscan.pipelines.atomic import dumps_json
    from octoscan.pipelines.dicom_results import render_dicom_results
    from octoscan.pipelines.outputs import render_study_files
    from octoscan.pipelines.report import render_overlay_pngs, render_study_page
    from octoscan.pipelines.study import PLANAR_KINDS, StudyOptions, score_series

    config = load_config("default")
    options = StudyOptions(pseudonym_key=b"bench")
    index = _stage(times, "discovery", lambda: discover(study))
    planar = [s for s in index.series if s.kind in PLANAR_KINDS]
    images = _stage(times, "load", lambda: [im for s in planar for im in load_planar(s)])
    _stage(times, "score", lambda: score_planar(images, config))
    t0 = time.perf_counter()
    outcome = score_series(index.series, config, options)
    total = time.perf_counter() - t0
    if outcome.status != "ok" or outcome.result is None:
        raise RuntimeError(f"planar study not scored: {outcome.error_code}")
    files = render_study_files(outcome)
    dumps_json(outcome.result)
    # result = what score_series adds to load + score (result dict), plus the file bytes
    times.setdefault("result", []).append(max(total - times["load"][-1] - times["score"][-1], 0.0))
    t0 = time.perf_counter()
    render_study_files(outcome)
    times["result"][-1] += time.perf_counter() - t0
    pngs = _stage(times, "overlays", lambda: render_overlay_pngs(outcome, show_phi=False))
    overlays = {name: name for name in pngs}
    _stage(times, "report", lambda: render_study_page(outcome.result, overlays))
    _stage(
        times,
        "dicom",
        lambda: render_dicom_results(outcome, config_hash="bench", pseudonymise=False),
    )
    if not files:
        raise RuntimeError("no study files rendered")


def _spect_once(study: Path, times: dict[str, list[float]]) -> None:
    from octoscan.imaging.discovery import discover
    from octoscan.imaging.types import SeriesKind
    from octoscan.imaging.volume import load_ct, load_spect
    from octoscan.models.config import load_config
    from octoscan.models.tomo_score import score_tomographic
    from octoscan.pipelines.overlays import render_volume_overlays
    from octoscan.pipelines.report import encode_png

    config = load_config("default")
    tomo = config.tomo
    index = _stage(times, "discovery", lambda: discover(study))
    spect_entry = next(s for s in index.series if s.kind is SeriesKind.SPECT)
    ct_entry = next(s for s in index.series if s.kind is SeriesKind.CT)

    def load():  # type: ignore[no-untyped-def]
        return load_spect(spect_entry.files), load_ct(ct_entry.files)

    spect, ct = _stage(times, "load", load)
    score = _stage(
        times, "score", lambda: score_tomographic(spect, ct=ct, config=config, tomo=tomo)
    )

    def overlays():  # type: ignore[no-untyped-def]
        panels = render_volume_overlays(spect, score.lesions, score.references, ct)
        return {k: encode_png(v) for k, v in panels.items()}

    _stage(times, "overlays", overlays)


def measure(work: Path, *, repeats: int) -> dict[str, object]:
    imports = _timed_imports()
    planar_dir, spect_dir = work / "planar", work / "spect-ct"
    if not (planar_dir / "truth.json").exists():
        run_octoscan(["phantom", str(planar_dir), "--kind", "planar", "--overwrite"])
    if not (spect_dir / "truth.json").exists():
        run_octoscan(["phantom", str(spect_dir), "--kind", "spect-ct", "--overwrite"])
    studies = {}
    for name, fn, folder in (
        ("planar", _planar_once, planar_dir),
        ("spect_ct", _spect_once, spect_dir),
    ):
        times: dict[str, list[float]] = {}
        fn(folder, times)  # warm-up
        times.clear()
        for _ in range(repeats):
            fn(folder, times)
        stages = {k: round(median(v), 3) for k, v in times.items()}
        studies[name] = {"stages_s": stages, "total_s": round(sum(stages.values()), 3)}
    return {
        "imports_s": {k: round(v, 3) for k, v in imports.items()},
        "studies": studies,
        "peak_rss_mib": peak_rss_mib(),
        "repeats": repeats,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None, help="data folder (reused)")
    args = parser.parse_args(argv)
    figures = measure(work_dir(args.work, "stages"), repeats=args.repeats)
    studies = figures["studies"]
    rows = [
        [stage, *(studies[s]["stages_s"].get(stage) for s in studies)]  # type: ignore[index]
        for stage in STAGE_ORDER
    ]
    rows.append(["total", *(studies[s]["total_s"] for s in studies)])  # type: ignore[index]
    print_table(["stage (s, median)", *studies], rows)  # type: ignore[arg-type]
    print_table(["import", "s"], list(figures["imports_s"].items()))  # type: ignore[union-attr]
    print(
        f"peak RSS {figures['peak_rss_mib']} MiB; targets: planar <= 2 s, SPECT/CT <= 10 s, "
        "RSS <= 2048 MiB"
    )
    emit_json("stage_times", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
