"""A deterministic cohort of phantom studies spanning grades, sizes, depths, counts and edge cases.

Study ``i`` of a cohort with seed ``s`` has its own seed ``s * 100003 + i`` (bodies, lesions and
noise all differ) and follows a repeating pattern of ten (see :data:`EDGE_CASE_CYCLE`):
splenectomy, diffuse liver involvement, no lesions, a 4 h-only study, an anterior-only
(single-view) study, both 4 h and 24 h planar series, and four standard studies. Counts are
log-uniform over 0.5-3 million per anterior view; lesions 1-6 per study drawn over grades 1-4,
8-60 mm and all sites (about a quarter near a grade threshold on purpose). Some standard studies
use a DICOM variant (separate view files, summed windows, no view code, a scatter window,
swapped detectors) so readers are exercised too, and standard studies cycle through lesion
profiles (mixed, avid, low: see ``LESION_PROFILES``) so that every decision occurs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from octoscan.imaging.errors import InvalidInputError
from octoscan.imaging.phantom.study import KINDS, StudySpec

EDGE_CASE_CYCLE: tuple[str, ...] = (
    "standard",
    "splenectomy",
    "standard",
    "diffuse_liver",
    "no_lesions",
    "standard",
    "hours_4",
    "single_view",
    "standard",
    "hours_4_and_24",
)
STANDARD_VARIANTS: tuple[tuple[str, ...], ...] = (
    (),
    ("separate-views",),
    ("summed-windows",),
    ("no-view-code",),
    (),
    ("scatter-window",),
    ("detector-swap",),
)
LESION_PROFILE_CYCLE: tuple[str, ...] = ("mixed", "avid", "mixed", "low", "avid")
COUNT_RANGE = (5.0e5, 3.0e6)
MAX_COHORT = 10000


@dataclass(frozen=True)
class CohortEntry:
    """One study of a cohort: its folder name, edge case and full specification."""

    index: int
    name: str
    edge_case: str
    spec: StudySpec


def cohort_specs(
    n: int,
    *,
    seed: int = 0,
    kind: str = "all",
    ct_slices: int | None = None,
    imaging: Mapping[str, Any] | None = None,
) -> tuple[CohortEntry, ...]:
    """The first ``n`` studies of the cohort of ``seed`` (same arguments, same cohort).

    ``kind`` as for :class:`StudySpec` ("pet-ct" makes every study a PET/CT, without the
    planar edge cases). ``ct_slices`` overrides the CT length (useful for small test cohorts).
    ``imaging``: :class:`StudySpec` fields of the imaging every study gets (e.g.
    ``emission_fwhm_mm``, ``planar_pixel_mm``); the same patients, imaged differently.
    """
    if not 1 <= n <= MAX_COHORT:
        raise InvalidInputError(f"cohort size {n} outside 1-{MAX_COHORT}", code="invalid_option")
    if kind not in KINDS:
        raise InvalidInputError(
            f"phantom kind {kind!r} unknown; expected one of {', '.join(KINDS)}",
            code="invalid_option",
        )
    width = max(3, len(str(n - 1)))
    standard_slots = [j for j, c in enumerate(EDGE_CASE_CYCLE) if c == "standard"]
    n_standard = len(standard_slots)
    out = []
    for i in range(n):
        study_seed = seed * 100003 + i
        rng = np.random.default_rng([seed, i, 31])
        counts = float(math.exp(rng.uniform(math.log(COUNT_RANGE[0]), math.log(COUNT_RANGE[1]))))
        counts = round(counts, -3)
        case = EDGE_CASE_CYCLE[i % len(EDGE_CASE_CYCLE)]
        if kind == "pet-ct":
            case = "standard" if case not in ("splenectomy", "no_lesions") else case
        options: dict[str, object] = {}
        if case == "splenectomy":
            options["splenectomy"] = True
        elif case == "diffuse_liver":
            options["diffuse_liver"] = True
        elif case == "no_lesions":
            options["lesions"] = 0
        elif case == "hours_4":
            options["hours_post_injection"] = (4.0,)
        elif case == "hours_4_and_24":
            options["hours_post_injection"] = (4.0, 24.0)
        elif case == "single_view":
            options["variants"] = ("anterior-only",)
        elif kind != "pet-ct":
            # the k-th standard study of the cohort takes the k-th variant set
            k = n_standard * (i // len(EDGE_CASE_CYCLE)) + standard_slots.index(
                i % len(EDGE_CASE_CYCLE)
            )
            options["variants"] = STANDARD_VARIANTS[k % len(STANDARD_VARIANTS)]
        if kind == "pet-ct":
            options.pop("variants", None)
        if case == "standard":
            options["lesion_profile"] = LESION_PROFILE_CYCLE[
                (i + i // 10) % len(LESION_PROFILE_CYCLE)
            ]
        spec = replace(
            StudySpec(seed=study_seed, kind=kind, counts=counts, ct_slices=ct_slices),
            **options,
            **(imaging or {}),
        )
        out.append(CohortEntry(index=i, name=f"study_{i:0{width}d}", edge_case=case, spec=spec))
    return tuple(out)
