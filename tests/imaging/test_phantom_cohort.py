"""The phantom cohort: deterministic, spans edge cases, counts, variants and lesion mixes."""

import pytest

from octoscan.imaging.errors import InvalidInputError
from octoscan.imaging.phantom.cohort import EDGE_CASE_CYCLE, cohort_specs


def test_cohort_is_deterministic_and_seeded():
    a = cohort_specs(25, seed=3)
    assert a == cohort_specs(25, seed=3)
    assert [e.spec.seed for e in a] != [e.spec.seed for e in cohort_specs(25, seed=4)]
    assert len({e.spec.seed for e in a}) == 25
    assert [e.name for e in a[:2]] == ["study_000", "study_001"]


def test_cohort_spans_edge_cases_counts_and_variants():
    entries = cohort_specs(20, seed=0)
    cases = [e.edge_case for e in entries]
    assert set(cases) == set(EDGE_CASE_CYCLE)
    by_case = {e.edge_case: e.spec for e in entries}
    assert by_case["splenectomy"].splenectomy
    assert by_case["diffuse_liver"].diffuse_liver
    assert by_case["no_lesions"].lesions == 0
    assert by_case["hours_4"].hours_post_injection == (4.0,)
    assert by_case["hours_4_and_24"].hours_post_injection == (4.0, 24.0)
    assert by_case["single_view"].variants == ("anterior-only",)
    counts = [e.spec.counts for e in entries]
    assert min(counts) >= 5e5 and max(counts) <= 3e6 and max(counts) > 2 * min(counts)
    variants = {v for e in entries for v in e.spec.variants}
    assert {"separate-views", "summed-windows", "no-view-code"} <= variants
    assert {e.spec.lesion_profile for e in entries} == {"mixed", "avid", "low"}
    assert all(e.spec.kind == "all" for e in entries)


def test_pet_cohort_and_errors():
    entries = cohort_specs(10, seed=1, kind="pet-ct", ct_slices=4)
    assert all(e.spec.kind == "pet-ct" and e.spec.variants == () for e in entries)
    assert {e.edge_case for e in entries} == {"standard", "splenectomy", "no_lesions"}
    with pytest.raises(InvalidInputError, match="cohort size 0 outside 1-10000"):
        cohort_specs(0)
    with pytest.raises(InvalidInputError, match="phantom kind 'xray' unknown"):
        cohort_specs(3, kind="xray")
