"""A whole phantom study: truth consistent with the images, counts, CT/SPECT/PET geometry,
determinism, read back through octoscan's own loaders."""

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from octoscan.imaging.discovery import discover
from octoscan.imaging.errors import InvalidInputError
from octoscan.imaging.phantom.anatomy import Tissue
from octoscan.imaging.phantom.lesions import parse_lesion_specs
from octoscan.imaging.phantom.study import StudySpec, simulate_study, write_study
from octoscan.imaging.phantom.tomo import ct_grid_for
from octoscan.imaging.phantom.truth import (
    VISIBLE_MIN_CNR,
    VISIBLE_MIN_CONTRAST,
    _place_reference,
)
from octoscan.imaging.planar import load_planar
from octoscan.imaging.types import SeriesKind, View
from octoscan.imaging.volume import load_ct, load_pet, load_spect

# L1 large and very hot (true grade 4), L2 a faint node (grade 1), L3 pancreas, L4 bone,
# L5 a cold liver lesion (grade 1, invisible on planar)
LESIONS = "liver:50:30,lymph_node:25:0.3,pancreas:20:8,bone:25:3,liver:20:0.2"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    spec = StudySpec(seed=21, kind="all", lesions=parse_lesion_specs(LESIONS), ct_slices=8)
    sim = simulate_study(spec)
    out = tmp_path_factory.mktemp("phantom-all")
    truth = write_study(sim, out)
    return sim, truth, out


@pytest.fixture(scope="module")
def index(study):
    return discover(study[2])


def _series(index, kind):
    found = [s for s in index.series if s.kind is kind]
    assert len(found) == 1, [s.kind for s in index.series]
    return found[0]


def test_truth_json_is_plain_json(study):
    _, truth, _ = study
    data = json.loads(json.dumps(truth.to_json(), allow_nan=False))
    assert data["patient_name"] == "PHANTOM^21" and data["seed"] == 21
    assert [les["id"] for les in data["lesions"]] == ["L1", "L2", "L3", "L4", "L5"]
    assert {o["name"] for o in data["organs"]} >= {"liver", "spleen", "kidney_left", "bladder"}
    assert data["planar"][0]["references"]["liver"]["radius_mm"] == 15.0
    assert {s["role"] for s in data["series"]} == {"planar_whole_body", "spect", "ct"}


def test_grade4_lesion_peak_exceeds_spleen_and_grade1_stays_below_half_liver(study):
    sim, truth, _ = study
    planar = truth.planar[0]
    refs = planar.references
    gm = sim.planar[0].simulation.geometric_mean_expected
    hot, faint = truth.lesions[0], truth.lesions[1]
    assert hot.true_ratio_spleen is not None and hot.true_ratio_spleen > 1.0  # true grade 4
    r, c = hot.planar[0].peak_rc
    assert gm[r, c] == pytest.approx(hot.planar[0].peak_gm)
    assert gm[r, c] > refs["spleen"].mean_gm
    assert hot.planar[0].apparent_ratio_spleen > 1.0
    assert faint.true_ratio_liver < 0.5
    assert faint.planar[0].apparent_ratio_liver < 0.5
    # a small avid lesion looks fainter on planar than its concentration says
    pancreas = truth.lesions[2]
    assert pancreas.planar[0].apparent_ratio_liver < 0.5 * pancreas.true_ratio_liver


def test_reference_regions_sit_in_their_organs(study):
    sim, truth, _ = study
    geo = sim.planar[0].simulation.geometry
    refs = truth.planar[0].references
    z, x = geo.pixel_centres_mm()
    for organ, tissue in (("liver", Tissue.LIVER), ("spleen", Tissue.SPLEEN)):
        r, c = refs[organ].center_rc
        iz = round((z[int(r)] - sim.grid.origin_mm[2]) / sim.grid.spacing_mm[0])
        ix = round((x[int(c)] - sim.grid.origin_mm[0]) / sim.grid.spacing_mm[2])
        assert np.any(sim.labels[iz, :, ix] == tissue), organ
    # the liver reference is in the right lobe (patient right: left half of the anterior view)
    assert refs["liver"].center_rc[1] < geo.cols / 2
    assert refs["spleen"].mean_gm > refs["liver"].mean_gm


def test_reference_stays_in_the_preferred_columns_before_leaving_them():
    # a liver-like slab, thickest over the midline columns; lesions crowd the preferred
    # (lateral) columns so that only relaxed clearances fit there: the reference relaxes
    # its lesion clearance inside them rather than moving to the thick midline
    thick = np.zeros((60, 80))
    rows = slice(10, 50)
    thick[rows, 5:75] = 100.0 + np.arange(5, 75)[None, :]  # thicker towards column 74
    lesions = np.zeros(thick.shape, dtype=bool)
    lesions[20, 15] = lesions[40, 15] = lesions[30, 28] = True
    prefer = np.zeros(thick.shape, dtype=bool)
    prefer[:, :35] = True
    placed = _place_reference(
        thick, np.zeros(thick.shape), lesions, radius_mm=8.0, pixel_mm=1.0, prefer_cols=prefer
    )
    assert placed is not None
    (_, c), level = placed
    assert c < 35 and level > 0
    unpreferred = _place_reference(
        thick, np.zeros(thick.shape), lesions, radius_mm=8.0, pixel_mm=1.0
    )
    assert unpreferred is not None and unpreferred[0][1] > 50 and unpreferred[1] == 0


def test_visibility_follows_contrast_and_cnr(study):
    _, truth, _ = study
    for lesion in truth.lesions:
        p = lesion.planar[0]
        assert p.visible == (p.contrast >= VISIBLE_MIN_CONTRAST and p.cnr >= VISIBLE_MIN_CNR)
    cold = truth.lesions[4]
    assert not cold.planar[0].visible and cold.planar[0].contrast < 0.05
    assert truth.lesions[0].planar[0].visible and truth.lesions[2].planar[0].visible


def test_cnr_scales_with_the_square_root_of_counts(study):
    sim, truth, _ = study
    low = simulate_study(replace(sim.spec, kind="planar", counts=sim.spec.counts / 4))
    ratio = truth.lesions[2].planar[0].cnr / low.planar[0].lesions[2].cnr
    assert ratio == pytest.approx(2.0, rel=0.01)
    # apparent ratios do not depend on the count level
    assert low.planar[0].lesions[2].apparent_ratio_liver == pytest.approx(
        truth.lesions[2].planar[0].apparent_ratio_liver, rel=1e-6
    )


def test_planar_read_back_counts_views_and_spacing(study, index):
    sim, truth, _ = study
    entry = _series(index, SeriesKind.PLANAR_WHOLE_BODY)
    images = {im.view: im for im in load_planar(entry)}
    assert set(images) == {View.ANTERIOR, View.POSTERIOR}
    p = sim.planar[0].simulation
    assert np.array_equal(images[View.ANTERIOR].counts, p.anterior_counts)
    assert np.array_equal(images[View.POSTERIOR].counts, p.posterior_counts)
    assert images[View.ANTERIOR].pixel_spacing_mm == (2.4, 2.4)
    assert images[View.ANTERIOR].acquisition.hours_post_injection == pytest.approx(24.0)
    for view, expected in (
        (View.ANTERIOR, p.anterior_expected),
        (View.POSTERIOR, p.posterior_expected),
    ):
        total = images[view].total_counts
        assert abs(total - expected.sum()) < 5 * math.sqrt(expected.sum())
    assert images[View.ANTERIOR].total_counts == truth.planar[0].counts_anterior
    assert abs(truth.planar[0].expected_counts_anterior - sim.spec.counts) < 1.0


def test_noisy_images_show_the_hot_lesion_above_the_spleen(study, index):
    """Independent of the truth code: smooth the written views, form the GM, compare."""
    from scipy import ndimage

    _, truth, _ = study
    images = {im.view: im for im in load_planar(_series(index, SeriesKind.PLANAR_WHOLE_BODY))}
    drow, dcol = truth.planar[0].posterior_shift_rc
    post = np.roll(images[View.POSTERIOR].counts[:, ::-1], (-round(drow), -round(dcol)), (0, 1))
    gm = np.sqrt(
        ndimage.gaussian_filter(images[View.ANTERIOR].counts, 2.0)
        * ndimage.gaussian_filter(post, 2.0)
    )
    refs = truth.planar[0].references

    def disk_mean(ref):
        rr, cc = np.ogrid[: gm.shape[0], : gm.shape[1]]
        r0, c0 = ref.center_rc
        return gm[(rr - r0) ** 2 + (cc - c0) ** 2 <= (ref.radius_mm / 2.4) ** 2].mean()

    assert disk_mean(refs["spleen"]) == pytest.approx(refs["spleen"].mean_gm, rel=0.1)
    assert disk_mean(refs["liver"]) == pytest.approx(refs["liver"].mean_gm, rel=0.1)
    r, c = truth.lesions[0].planar[0].peak_rc
    assert gm[r - 3 : r + 4, c - 3 : c + 4].max() > disk_mean(refs["spleen"])


def test_spect_and_ct_share_the_frame_and_overlap(study, index):
    sim, _, _ = study
    spect_entry = _series(index, SeriesKind.SPECT)
    ct_entry = _series(index, SeriesKind.CT)
    assert spect_entry.frame_of_reference_uid == ct_entry.frame_of_reference_uid
    assert spect_entry.frame_of_reference_uid == sim.frame_of_reference_uid
    spect = load_spect(spect_entry.files)
    ct = load_ct(ct_entry.files)
    assert spect.shape == (80, 128, 128) and ct.shape == (8, 256, 256)
    assert spect.spacing_mm == pytest.approx((4.8, 4.8, 4.8))
    assert np.allclose(spect.affine, sim.spect.grid.affine, atol=1e-3)
    ct_z = sorted(ct.index_to_lps(np.array([[k, 0, 0] for k in (0, 7)]))[:, 2])
    spect_z = sorted(spect.index_to_lps(np.array([[k, 0, 0] for k in (0, 79)]))[:, 2])
    assert spect_z[0] <= ct_z[0] < ct_z[1] <= spect_z[1]
    # SPECT voxels round to the simulated counts
    assert np.array_equal(spect.array, np.clip(np.rint(sim.spect.array), 0, 65535))


def test_lesion_lps_centre_lands_on_its_spect_voxel(study, index):
    sim, truth, _ = study
    spect = load_spect(_series(index, SeriesKind.SPECT).files)
    for lesion in (truth.lesions[0], truth.lesions[2]):
        idx = np.rint(spect.lps_to_index(np.asarray(lesion.center_lps_mm))).astype(int)
        lo = np.maximum(idx - 3, 0)
        sub = spect.array[lo[0] : idx[0] + 4, lo[1] : idx[1] + 4, lo[2] : idx[2] + 4]
        peak = np.unravel_index(int(np.argmax(sub)), sub.shape) + lo
        assert np.linalg.norm((peak - idx) * 4.8) <= 10.0, lesion.id
        liver_level = np.median(spect.array[sim.spect.array > 0])
        assert spect.array[tuple(idx)] > 3 * liver_level


def test_ct_hounsfield_units(study, index):
    sim, _, _ = study
    ct = load_ct(_series(index, SeriesKind.CT).files)
    labels = sim.anatomy.rasterize(ct_grid_for(sim.spect.grid, n_slices=8))
    # loaded CT is sorted along +z like the simulation grid
    assert np.allclose(ct.affine, sim.ct.grid.affine, atol=1e-3)
    assert ct.units == "HU"
    air = ct.array[labels == Tissue.AIR]
    assert np.median(air) == pytest.approx(-1000.0, abs=2.0)
    assert np.median(ct.array[labels == Tissue.SOFT_TISSUE]) == pytest.approx(45.0, abs=5.0)
    assert np.median(ct.array[labels == Tissue.FAT]) == pytest.approx(-100.0, abs=5.0)
    assert np.median(ct.array[labels == Tissue.BONE]) > 300.0


def test_same_seed_same_bytes(tmp_path):
    spec = StudySpec(seed=8, kind="all", lesions=2, ct_slices=2, counts=2e5)
    a = write_study(simulate_study(spec), tmp_path / "a")
    b = write_study(simulate_study(spec), tmp_path / "b")
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.dcm"))
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.dcm"))
    assert files_a == files_b and len(files_a) == 4
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    assert a.to_json() == b.to_json()
    other = simulate_study(replace(spec, seed=9))
    assert other.identity.study_instance_uid != a.study_instance_uid


def test_pet_ct_study_in_suv(tmp_path):
    spec = StudySpec(seed=31, kind="pet-ct", lesions=parse_lesion_specs("liver:40:3"), ct_slices=30)
    sim = simulate_study(spec)
    truth = write_study(sim, tmp_path)
    assert truth.tracer == "Ga-68 DOTATATE" and truth.planar == ()
    index = discover(tmp_path)
    pet_entry = _series(index, SeriesKind.PET)
    ct_entry = _series(index, SeriesKind.CT)
    assert pet_entry.frame_of_reference_uid == ct_entry.frame_of_reference_uid
    pet = load_pet(pet_entry.files)
    assert pet.units == "SUVbw"
    labels = sim.anatomy.rasterize(sim.pet.grid)
    from scipy import ndimage

    interior = ndimage.binary_erosion(labels == Tissue.LIVER, iterations=3)
    lesion_region = np.zeros_like(interior)
    idx = np.rint(pet.lps_to_index(np.asarray(truth.lesions[0].center_lps_mm))).astype(int)
    lesion_region[tuple(slice(max(i - 8, 0), i + 9) for i in idx)] = True
    interior &= ~lesion_region
    assert interior.sum() > 200
    liver_suv = {o.name: o.suv for o in truth.organs}["liver"]
    assert float(np.mean(pet.array[interior])) == pytest.approx(liver_suv, rel=0.08)
    assert truth.lesions[0].suv == pytest.approx(3 * liver_suv, rel=1e-6)
    assert pet.array[tuple(idx)] > 2.0 * liver_suv


def test_emission_resolution_can_be_chosen():
    lesions = parse_lesion_specs("liver:15:10")
    sharp = simulate_study(StudySpec(seed=33, kind="pet-ct", lesions=lesions, ct_slices=80))
    blurred = simulate_study(
        StudySpec(seed=33, kind="pet-ct", lesions=lesions, ct_slices=80, emission_fwhm_mm=12.0)
    )
    assert sharp.pet is not None and blurred.pet is not None
    assert sharp.pet.resolution_fwhm_mm == 6.5 and blurred.pet.resolution_fwhm_mm == 12.0
    idx = tuple(
        np.rint(
            np.linalg.solve(sharp.pet.grid.affine, [*sharp.lesions[0].center_mm, 1.0])[:3]
        ).astype(int)
    )
    box = tuple(slice(i - 3, i + 4) for i in idx)
    # a 15 mm lesion loses more of its peak at 12 mm than at 6.5 mm; the liver keeps its level
    assert blurred.pet.array[box].max() < 0.75 * sharp.pet.array[box].max()
    liver = np.asarray(sharp.anatomy.rasterize(sharp.pet.grid) == Tissue.LIVER)
    from scipy import ndimage

    core = ndimage.binary_erosion(liver, iterations=4)
    assert float(blurred.pet.array[core].mean()) == pytest.approx(
        float(sharp.pet.array[core].mean()), rel=0.05
    )


def test_spec_validation_errors():
    with pytest.raises(InvalidInputError, match="phantom kind 'mri' unknown"):
        StudySpec(seed=1, kind="mri")
    with pytest.raises(InvalidInputError, match="counts 100 outside"):
        StudySpec(seed=1, counts=100)
    with pytest.raises(InvalidInputError, match="ct_slices 0 outside 1-1000"):
        StudySpec(seed=1, ct_slices=0)
    with pytest.raises(InvalidInputError, match="hours_post_injection"):
        StudySpec(seed=1, hours_post_injection=())
    with pytest.raises(InvalidInputError, match="lesion count 21 outside 0-20"):
        StudySpec(seed=1, lesions=21)
    with pytest.raises(InvalidInputError, match="unknown variant"):
        StudySpec(seed=1, variants=("sideways",))
    with pytest.raises(InvalidInputError, match="compression 'zip' unknown"):
        StudySpec(seed=1, compress="zip")
    with pytest.raises(InvalidInputError, match="lesion profile 'warm' unknown"):
        StudySpec(seed=1, lesion_profile="warm")
    with pytest.raises(InvalidInputError, match=r"emission_fwhm_mm 40\.0 outside 4\.5-30 mm"):
        StudySpec(seed=1, emission_fwhm_mm=40.0)
