"""The optional planar CNN: model, data, training, inference and fusion (issue 10)."""

from __future__ import annotations

import dataclasses
import math
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from octoscan.imaging.errors import InvalidInputError, ModelUnavailableError
from octoscan.models.cnn_model import (
    CLASSES,
    LESION_CLASS,
    body_level,
    import_torch,
    model_shape,
    normalise,
)
from octoscan.models.config import load_config
from octoscan.models.decision import decide_eligibility
from octoscan.models.types import Lesion, OrganRegion, PlanarScore, ReferenceRegion

CONFIG = load_config("default")


@pytest.fixture(scope="module")
def smoke_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from octoscan.models.cnn_train import train

    out = tmp_path_factory.mktemp("cnn") / "a" / "planar_cnn.pt"
    train(out, generate=2, epochs=1, seed=5)
    return out


def test_smoke_training_is_deterministic(smoke_weights: Path, tmp_path: Path) -> None:
    from octoscan.models.cnn_train import sha256_of, train

    report = train(tmp_path / "planar_cnn.pt", generate=2, epochs=1, seed=5)
    assert report.sha256 == sha256_of(smoke_weights)
    assert (tmp_path / "planar_cnn.sha256").read_text() == f"{report.sha256}  planar_cnn.pt\n"
    assert report.n_train == 2 and report.n_validation == 0 and len(report.losses) == 1
    assert 50_000 < report.n_parameters < 500_000


def test_train_rejects_bad_counts(tmp_path: Path) -> None:
    from octoscan.models.cnn_train import train

    with pytest.raises(InvalidInputError, match="--generate 0 outside"):
        train(tmp_path / "w.pt", generate=0, epochs=1, seed=0)
    with pytest.raises(InvalidInputError, match="--epochs 0 outside"):
        train(tmp_path / "w.pt", generate=1, epochs=0, seed=0)


def test_without_torch_everything_imports_and_the_cnn_says_why(
    monkeypatch: pytest.MonkeyPatch, smoke_weights: Path
) -> None:
    code = (
        "import sys\n"
        "import octoscan.models.cnn_infer, octoscan.models.cnn_fusion, octoscan.models.cnn_data\n"
        "import octoscan.pipelines.cmd_train, octoscan.pipelines.cli\n"
        "assert 'torch' not in sys.modules, 'torch imported at module level'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    from octoscan.models.cnn_infer import load_model

    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ModelUnavailableError, match="needs torch"):
        import_torch()
    with pytest.raises(ModelUnavailableError, match="needs torch"):
        load_model(smoke_weights)


def test_sha256_mismatch_and_missing_files_refused(smoke_weights: Path, tmp_path: Path) -> None:
    from octoscan.models.cnn_infer import load_model

    w = tmp_path / "planar_cnn.pt"
    shutil.copy(smoke_weights, w)
    with pytest.raises(ModelUnavailableError, match=r"checksum file .* missing"):
        load_model(w)
    (tmp_path / "planar_cnn.sha256").write_text("0" * 64 + "  planar_cnn.pt\n")
    with pytest.raises(ModelUnavailableError, match="refusing to load"):
        load_model(w)
    (tmp_path / "planar_cnn.sha256").write_text("nonsense\n")
    with pytest.raises(ModelUnavailableError, match="64-digit hex"):
        load_model(w)
    with pytest.raises(ModelUnavailableError, match="not found"):
        load_model(tmp_path / "absent.pt")


def test_inference_on_the_original_grid(smoke_weights: Path) -> None:
    from octoscan.models.cnn_infer import load_model, predict

    model = load_model(smoke_weights)
    rng = np.random.default_rng(1)
    image = rng.poisson(50.0, size=(301, 93)).astype(np.float32)
    pred = predict(image, (3.1, 2.7), model=model)
    assert pred.probabilities.shape == (len(CLASSES), 301, 93)
    assert pred.labels.shape == (301, 93)
    np.testing.assert_allclose(pred.probabilities.sum(axis=0), 1.0, atol=1e-4)
    assert pred.weights_sha256 == model.sha256
    with pytest.raises(InvalidInputError, match="needs spacing_mm"):
        predict(image, None, model=model)
    with pytest.raises(InvalidInputError, match="planar image shape"):
        predict(image[0], (3.0, 3.0), model=model)


def test_normalisation_is_scale_free_and_resamples_to_model_pixels() -> None:
    rng = np.random.default_rng(3)
    image = np.zeros((400, 100), dtype=np.float32)
    image[50:350, 20:80] = 10.0
    image[100:150, 30:50] = 60.0
    image += rng.random(image.shape).astype(np.float32) * 0.01
    assert model_shape(image.shape, (2.4, 2.4)) == (200, 50)
    a = normalise(image, (2.4, 2.4))
    b = normalise(image * 1000.0, (2.4, 2.4))
    assert a.shape == (200, 50)
    np.testing.assert_allclose(a, b, atol=1e-4)
    assert body_level(image) == pytest.approx(10.0, abs=0.02)


def test_planar_labels_follow_the_phantom_anatomy() -> None:
    from octoscan.imaging.phantom.study import StudySpec, simulate_study
    from octoscan.models.cnn_data import planar_labels

    study = simulate_study(StudySpec(seed=11, kind="planar", lesions=0, voxel_mm=6.0))
    labels = planar_labels(study)
    assert labels.shape == (1024, 256)
    cols = {}
    for name in ("liver", "spleen", "kidney", "bladder"):
        rr, cc = np.nonzero(labels == CLASSES.index(name))
        assert rr.size > 50, name
        cols[name] = (rr.mean(), cc.mean())
    # anterior view: patient right (liver) on the image left, spleen on the right
    assert cols["liver"][1] < 128 < cols["spleen"][1]
    # bladder below the kidneys, kidneys below the top of the liver
    assert cols["bladder"][0] > cols["kidney"][0] > cols["liver"][0] - 50
    assert not (labels == LESION_CLASS).any()


# --- fusion on a hand-built score -------------------------------------------------------


@dataclass(frozen=True)
class FakePrediction:
    probabilities: np.ndarray


def _disk(shape: tuple[int, int], rc: tuple[int, int], radius: float) -> np.ndarray:
    r = np.arange(shape[0])[:, None]
    c = np.arange(shape[1])[None, :]
    return (r - rc[0]) ** 2 + (c - rc[1]) ** 2 <= radius**2


def _ref(organ: str, mean: float) -> ReferenceRegion:
    return ReferenceRegion(
        organ=organ,
        mean=mean,
        std=1.0,
        variance_of_mean=1e-3,
        variance_method="poisson",
        method="test",
        radius_mm=15.0,
        center_rc=(5.0, 5.0),
    )


SHAPE = (120, 80)


def _score() -> PlanarScore:
    image = np.full(SHAPE, 40.0, dtype=np.float32)  # soft tissue; liver reference 100
    hot = _disk(SHAPE, (30, 20), 3)
    image[hot] = 500.0
    image[_disk(SHAPE, (80, 50), 4)] = 70.0
    spleen = _disk(SHAPE, (40, 65), 6)
    image[spleen] = 300.0
    refs = (_ref("liver", 100.0), _ref("spleen", 300.0))
    lesion = Lesion(
        id=1,
        diameter_mm=24.0,
        peak=500.0,
        mean=500.0,
        units="counts/pixel (conjugate-view geometric mean)",
        ratio_liver=5.0,
        ratio_liver_ci=(4.8, 5.2),
        ratio_spleen=1.67,
        ratio_spleen_ci=(1.6, 1.7),
        spleen_reference_organ="spleen",
        grade=4,
        grade_range=(4, 4),
        borderline=False,
        region="liver",
        grading_method="test",
        ci_method="poisson",
        center_rc=(30.0, 20.0),
        mask=hot,
    )
    return PlanarScore(
        tracer="In-111 pentetreotide",
        tracer_assumed=False,
        views_used=("anterior", "posterior"),
        grid="anterior",
        hours_post_injection=24.0,
        grading_method="test",
        ci_method="poisson",
        pixel_spacing_mm=(4.0, 4.0),
        posterior_shift_rc=(0.0, 0.0),
        orientation="head_up",
        organs=(OrganRegion("spleen", (40.0, 65.0), 300.0, "test", mask=spleen),),
        references=refs,
        lesions=(lesion,),
        decision=decide_eligibility([lesion], refs, config=CONFIG),
        config_name=CONFIG.name,
        config_hash="x",
        series_instance_uids=("1.2.3",),
        warnings=(),
        scoring_image=image,
        variance_image=image.copy(),
    )


def _prediction(*disks: tuple[tuple[int, int], float]) -> FakePrediction:
    probs = np.zeros((len(CLASSES), *SHAPE), dtype=np.float32)
    probs[0] = 1.0
    for rc, radius in disks:
        d = _disk(SHAPE, rc, radius)
        probs[:, d] = 0.0
        probs[LESION_CLASS, d] = 0.95
        probs[0, d] = 0.05
    return FakePrediction(probs)


def test_fusion_labels_sources_and_grades_cnn_lesions_on_measured_ratios() -> None:
    from octoscan.models.cnn_fusion import fuse_lesions

    score = _score()
    assert score.decision.status == "eligible"
    fused = fuse_lesions(score, _prediction(((30, 20), 3), ((80, 50), 4), ((40, 65), 4)), CONFIG)
    assert [(les.id, les.source) for les in fused.lesions] == [(1, "both"), (2, "cnn")]
    new = fused.lesions[1]
    assert new.center_rc == (80.0, 50.0)
    assert new.ratio_liver == pytest.approx(0.70, abs=0.01)
    assert new.ratio_liver_ci is not None and new.ratio_liver_ci[0] < 0.70 < new.ratio_liver_ci[1]
    assert new.grade == 2
    assert new.diameter_mm == pytest.approx(2 * math.sqrt(49 * 16 / math.pi), abs=0.1)
    # a 25 mm grade-2 lesion beside a grade-4 one changes the decision: review, with reason
    assert fused.decision.status == "needs_review"
    assert any("lesion 2" in r and "cnn detector only" in r for r in fused.decision.reasons)


def test_fusion_keeps_threshold_only_lesions_and_the_decision_when_nothing_changes() -> None:
    from octoscan.models.cnn_fusion import FusionConfig, fuse_lesions

    score = _score()
    fused = fuse_lesions(score, _prediction(((100, 10), 0)), CONFIG)  # 16 mm^2: dropped
    assert [les.source for les in fused.lesions] == ["threshold"]
    # the only lesion, unconfirmed by the CNN, decides the study: review, with the reason
    assert fused.decision.status == "needs_review"
    assert any("threshold detector only" in r for r in fused.decision.reasons)
    confirmed = fuse_lesions(score, _prediction(((31, 21), 2)), CONFIG)
    assert [les.source for les in confirmed.lesions] == ["both"]
    assert confirmed.decision == score.decision
    with pytest.raises(ValueError, match="expected \\(7, 120, 80\\)"):
        fuse_lesions(score, FakePrediction(np.zeros((7, 10, 10))), CONFIG)
    with pytest.raises(ValueError, match="min_probability"):
        FusionConfig(min_probability=1.5)


def test_shipped_weights_load_and_find_liver_and_spleen_on_a_held_out_phantom() -> None:
    from octoscan.imaging.phantom.study import StudySpec, simulate_study
    from octoscan.models.cnn_data import planar_images, planar_labels
    from octoscan.models.cnn_infer import default_weights_path, load_model, predict
    from octoscan.models.cnn_train import sha256_of
    from octoscan.models.planar_align import conjugate_view

    model = load_model()
    assert model.sha256 == sha256_of(default_weights_path())
    study = simulate_study(StudySpec(seed=4242, kind="planar", lesions=0, voxel_mm=6.0))
    conj = conjugate_view(*planar_images(study), config=CONFIG.planar.alignment)
    pred = predict(conj.image, conj.pixel_spacing_mm, model=model)
    truth = planar_labels(study)
    for organ in ("liver", "spleen"):
        t = truth == CLASSES.index(organ)
        p = pred.mask(organ)
        assert 2.0 * (t & p).sum() / (t.sum() + p.sum()) > 0.8, organ


def _with_probability(prediction: FakePrediction, rc: tuple[int, int], radius: float, p: float):
    probs = prediction.probabilities.copy()
    d = _disk(SHAPE, rc, radius)
    probs[LESION_CLASS, d] = p
    probs[0, d] = 1.0 - p
    return FakePrediction(probs)


def test_fusion_proposes_only_confident_supported_spots_away_from_set_aside_uptake() -> None:
    from octoscan.models.cnn_fusion import FusionConfig, fuse_lesions
    from octoscan.models.types import SetAsideSpot

    score = _score()
    base = _prediction(((30, 20), 3))
    # the 70-count spot at (80, 50) on a 40-count background: proposed at p 0.96 ...
    proposed = fuse_lesions(score, _with_probability(base, (80, 50), 4, 0.96), CONFIG)
    assert [les.source for les in proposed.lesions] == ["both", "cnn"]
    # ... not when the network is unsure (p 0.6 < propose_min_probability 0.9)
    unsure = fuse_lesions(score, _with_probability(base, (80, 50), 4, 0.6), CONFIG)
    assert [les.source for les in unsure.lesions] == ["both"]
    # ... not where the image shows no excess over its surroundings (flat soft tissue)
    flat = fuse_lesions(score, _with_probability(base, (100, 20), 4, 0.95), CONFIG)
    assert [les.source for les in flat.lesions] == ["both"]
    # ... and not beside a spot the threshold detector set aside as physiological
    thyroid = dataclasses.replace(
        score, set_aside=(SetAsideSpot((82.0, 52.0), "thyroid (midline neck)", 9.0),)
    )
    near = fuse_lesions(thyroid, _with_probability(base, (80, 50), 4, 0.96), CONFIG)
    assert [les.source for les in near.lesions] == ["both"]
    lenient = FusionConfig(set_aside_distance_mm=5.0)  # 11 mm away: outside 5 mm
    kept = fuse_lesions(thyroid, _with_probability(base, (80, 50), 4, 0.96), CONFIG, fusion=lenient)
    assert [les.source for les in kept.lesions] == ["both", "cnn"]
    with pytest.raises(ValueError, match="propose_min_probability"):
        FusionConfig(propose_min_probability=0.0)


def test_fusion_places_a_proposal_at_its_own_peak_not_a_warmer_neighbour() -> None:
    """A CNN component holding a small hot spot and the edge of a broad warm structure: the
    proposal's peak is the spot (read at the apparent-peak smoothing); the detection
    smoothing would flatten the 8 mm spot below the broad structure and move the peak."""
    from octoscan.models.cnn_fusion import fuse_lesions

    base = _score()
    image = base.scoring_image.copy()
    image[_disk(SHAPE, (100, 42), 8)] = 110.0  # broad, warm
    image[_disk(SHAPE, (100, 28), 1)] = 160.0  # small, hot
    score = dataclasses.replace(base, scoring_image=image, variance_image=image.copy())
    fused = fuse_lesions(score, _prediction(((100, 32), 6)), CONFIG)
    proposed = [les for les in fused.lesions if les.source == "cnn"]
    assert len(proposed) == 1
    assert proposed[0].center_rc is not None
    assert math.hypot(proposed[0].center_rc[0] - 100, proposed[0].center_rc[1] - 28) <= 1.0


def _labelled(prediction: FakePrediction, rc: tuple[int, int], radius: float, organ: str):
    """The prediction with a disk labelled ``organ`` (lesion probability 0.02)."""
    probs = prediction.probabilities.copy()
    d = _disk(SHAPE, rc, radius)
    probs[:, d] = 0.0
    probs[CLASSES.index(organ), d] = 0.98
    probs[LESION_CLASS, d] = 0.02
    return FakePrediction(probs)


def test_fusion_sets_aside_threshold_spots_the_cnn_labels_physiological() -> None:
    """A grade-3 threshold spot the network labels kidney (lesion probability 0.02) is set
    aside with the reason; beside a confirmed grade-4 lesion nothing changes for the
    decision; as the only lesion (the network seeing no other) it made the study eligible:
    review, with the reason. The
    same spot labelled body, or with a lesion probability of 0.3, stays a lesion."""
    from octoscan.models.cnn_fusion import FusionConfig, fuse_lesions, physiological_by_cnn

    base = _score()
    kidney_pole = _disk(SHAPE, (100, 60), 4)
    image = base.scoring_image.copy()
    image[kidney_pole] = 180.0
    spot = dataclasses.replace(
        base.lesions[0],
        id=2,
        peak=180.0,
        mean=180.0,
        ratio_liver=1.8,
        ratio_liver_ci=(1.6, 2.0),
        ratio_spleen=0.6,
        ratio_spleen_ci=(0.55, 0.65),
        grade=3,
        grade_range=(3, 3),
        region="abdomen",
        center_rc=(100.0, 60.0),
        mask=kidney_pole,
    )
    score = dataclasses.replace(
        base,
        scoring_image=image,
        variance_image=image.copy(),
        lesions=(base.lesions[0], spot),
        decision=decide_eligibility([base.lesions[0], spot], base.references, config=CONFIG),
    )
    pred = _labelled(_prediction(((30, 20), 3)), (100, 60), 5, "kidney")
    fused = fuse_lesions(score, pred, CONFIG)
    assert [(les.source, les.center_rc) for les in fused.lesions] == [("both", (30.0, 20.0))]
    assert [(s.center_rc, s.reason) for s in fused.set_aside] == [
        ((100.0, 60.0), "kidney on the CNN organ map (threshold grade 3)")
    ]
    assert any("set aside as kidney uptake" in w for w in fused.warnings)
    assert fused.decision.status == "eligible"

    alone = dataclasses.replace(
        score,
        lesions=(spot,),
        decision=decide_eligibility([spot], base.references, config=CONFIG),
    )
    assert alone.decision.status == "eligible"
    fused_alone = fuse_lesions(alone, _labelled(_prediction(), (100, 60), 5, "kidney"), CONFIG)
    assert fused_alone.lesions == ()
    assert fused_alone.decision.status == "needs_review"
    assert any(
        "CNN organ map (kidney (threshold grade 3))" in r and "not_eligible without them" in r
        for r in fused_alone.decision.reasons
    )

    body = _labelled(_prediction(((30, 20), 3)), (100, 60), 5, "background")
    assert [les.grade for les in fuse_lesions(score, body, CONFIG).lesions] == [4, 3]
    unsure = pred.probabilities.copy()
    unsure[LESION_CLASS, 100, 60] = 0.3
    kept = fuse_lesions(score, FakePrediction(unsure), CONFIG)
    assert [les.grade for les in kept.lesions] == [4, 3]
    classes = pred.probabilities.argmax(axis=0)
    assert (
        physiological_by_cnn(kidney_pole, pred.probabilities, classes, FusionConfig()) == "kidney"
    )
    strict = FusionConfig(physiological_max_probability=0.01)
    assert physiological_by_cnn(kidney_pole, pred.probabilities, classes, strict) is None
    with pytest.raises(ValueError, match="physiological_min_share"):
        FusionConfig(physiological_min_share=1.0)
