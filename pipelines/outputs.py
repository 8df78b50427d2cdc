"""Files written for one scored study (atomically, deterministically)."""

from __future__ import annotations

from pathlib import Path

from octoscan.pipelines.atomic import write_json_atomic
from octoscan.pipelines.study import StudyOutcome

RESULT_NAME = "result.json"


def write_study_outputs(outcome: StudyOutcome, study_dir: str | Path) -> list[Path]:
    """Write ``result.json`` of a scored study into ``study_dir``; returns the paths written."""
    if outcome.result is None:
        raise ValueError(f"study {outcome.study_key} has no result to write ({outcome.status})")
    return [write_json_atomic(Path(study_dir) / RESULT_NAME, outcome.result)]
