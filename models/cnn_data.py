"""Training samples for the planar CNN: phantom studies with domain randomisation.

Each sample is one simulated 111In whole-body study
(:func:`octoscan.imaging.phantom.study.simulate_study`, in memory), scored the way the
pipeline scores it: the noisy anterior and posterior counts go through
:func:`octoscan.models.planar_align.conjugate_view` (mirroring, registration, geometric
mean), and the geometric mean is normalised by :func:`octoscan.models.cnn_model.normalise`.

Randomised per sample (:func:`draw_sample_spec`): anatomy and organ uptake ratios (the
phantom seed), count level (3e5-6e6 anterior counts, log-uniform), pixel spacing (2.0-4.8 mm)
and matrix size (field 1900-2500 mm long, 480-640 mm wide), camera-head offset (+-5 rows,
+-4 columns), 4 h or 24 h p.i., lesion number (0-8), profile (mixed, avid, low uptake) and
shapes (the generator's sizes 8-60 mm and elongations), splenectomy (8 %) and diffuse liver
involvement (5 %).

Labels (:func:`planar_labels`, anterior grid): the phantom's 3-D label volume is projected
along the anterior-posterior axis. Each class's *activity contribution* along a ray is the
number of its voxels times its concentration (kBq/mL); a pixel takes the class with the
largest contribution when that is at least :data:`ORGAN_FRACTION` of the ray's total
activity, else background/body. A lesion footprint (the projection of its ellipsoid,
:func:`octoscan.imaging.phantom.truth.lesion_footprint`) is labelled lesion when the truth
calls the lesion visible on the geometric mean (contrast >= 10 %, CNR >= 5) and is left out
of the loss (:data:`~octoscan.models.cnn_model.IGNORE_INDEX`) otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from octoscan.imaging.phantom.anatomy import Tissue
from octoscan.imaging.phantom.planar import sample_on_anterior
from octoscan.imaging.phantom.study import SimulatedStudy, StudySpec, simulate_study
from octoscan.imaging.phantom.truth import lesion_footprint
from octoscan.imaging.types import AcquisitionInfo, PlanarImage, SeriesKind, SourceRef, View
from octoscan.models.cnn_model import (
    CLASSES,
    IGNORE_INDEX,
    LESION_CLASS,
    model_shape,
    normalise,
    resample,
)
from octoscan.models.config import AlignmentConfig
from octoscan.models.planar_align import conjugate_view

ORGAN_FRACTION = 0.4  # a class owns a pixel when it emits >= this share of the ray's activity
LESION_RESAMPLE_FRACTION = 0.3  # a 4.8 mm pixel is lesion when >= 30 % of it is footprint
TRAINING_SEED_OFFSET = 1_000_000  # phantom seeds of training studies are >= this

_CLASS_TISSUES: dict[int, tuple[Tissue, ...]] = {
    CLASSES.index("liver"): (Tissue.LIVER,),
    CLASSES.index("spleen"): (Tissue.SPLEEN,),
    CLASSES.index("kidney"): (Tissue.KIDNEY_LEFT, Tissue.KIDNEY_RIGHT),
    CLASSES.index("bladder"): (Tissue.BLADDER,),
    CLASSES.index("bowel"): (Tissue.BOWEL,),
}


@dataclass(frozen=True)
class Sample:
    """One training sample at the model's 4.8 mm grid.

    ``image``: normalised network input (float32, (rows, cols)); ``labels``: uint8 class
    indices (255 = left out of the loss); ``phantom_seed``: the study's phantom seed.
    """

    image: np.ndarray
    labels: np.ndarray
    phantom_seed: int


def draw_sample_spec(seed: int, index: int) -> StudySpec:
    """The randomised phantom study of training sample ``index`` of training ``seed``."""
    rng = np.random.default_rng([seed, index, 7310])
    pixel_mm = float(rng.uniform(2.0, 4.8))
    rows = math.ceil(float(rng.uniform(1900.0, 2500.0)) / pixel_mm)
    cols = math.ceil(float(rng.uniform(480.0, 640.0)) / pixel_mm)
    profile = str(rng.choice(["mixed", "avid", "low"], p=[0.6, 0.25, 0.15]))
    return StudySpec(
        seed=TRAINING_SEED_OFFSET + int(rng.integers(0, 10**8)),
        kind="planar",
        lesions=int(rng.integers(0, 9)),
        counts=float(math.exp(rng.uniform(math.log(3e5), math.log(6e6)))),
        hours_post_injection=(24.0,) if rng.random() < 0.8 else (4.0,),
        splenectomy=bool(rng.random() < 0.08),
        diffuse_liver=bool(rng.random() < 0.05),
        voxel_mm=float(rng.choice([5.0, 6.0])),
        posterior_shift_rc=(
            round(float(rng.uniform(-5, 5)), 1),
            round(float(rng.uniform(-4, 4)), 1),
        ),
        lesion_profile=profile,
        planar_rows=rows,
        planar_cols=cols,
        planar_pixel_mm=round(pixel_mm, 3),
    )


def planar_labels(study: SimulatedStudy, timepoint: int = -1) -> np.ndarray:
    """Per-pixel class indices (uint8) on the anterior planar grid of ``study``.

    See the module docstring for the rule; ``timepoint`` indexes ``study.planar``.
    """
    tp = study.planar[timepoint]
    sim = tp.simulation
    geometry = sim.geometry
    model = tp.activity
    labels = study.labels
    dy = study.grid.spacing_mm[1]
    total = np.zeros((labels.shape[0], labels.shape[2]), dtype=np.float64)
    per_class = np.zeros((len(CLASSES), *total.shape), dtype=np.float64)
    owner = {t: c for c, ts in _CLASS_TISSUES.items() for t in ts}
    for tissue in Tissue:
        if tissue == Tissue.AIR:
            continue
        chord = (labels == tissue).sum(axis=1, dtype=np.float64) * dy
        if not chord.any():
            continue
        contribution = chord * model.kbq_per_ml(tissue)
        total += contribution
        if tissue in owner:
            per_class[owner[tissue]] += contribution
    body = sample_on_anterior(
        (labels != Tissue.AIR).any(axis=1).astype(np.float64), study.grid, geometry
    )
    total_a = sample_on_anterior(total, study.grid, geometry)
    out = np.zeros((geometry.rows, geometry.cols), dtype=np.uint8)
    best = np.zeros_like(total_a)
    for c in _CLASS_TISSUES:
        share = sample_on_anterior(per_class[c], study.grid, geometry)
        take = (share > best) & (share >= ORGAN_FRACTION * total_a) & (body > 0.5)
        out[take] = c
        best = np.maximum(best, share)
    for k, lesion in enumerate(study.lesions):
        mask, _, _ = lesion_footprint(lesion, sim)
        out[mask] = LESION_CLASS if tp.lesions[k].visible else IGNORE_INDEX
    return out


def planar_images(study: SimulatedStudy, timepoint: int = -1) -> tuple[PlanarImage, PlanarImage]:
    """The noisy anterior and posterior (as its camera stores it) of a simulated study."""
    tp = study.planar[timepoint]
    sim = tp.simulation
    acq = AcquisitionInfo(
        modality="NM",
        radionuclide=tp.activity.tracer.radionuclide,
        radiopharmaceutical=tp.activity.tracer.tracer.value,
        hours_post_injection=tp.hours_post_injection,
    )
    uid = study.identity.study_instance_uid
    src = SourceRef(uid, f"{uid}.1")
    spacing = (float(sim.geometry.pixel_mm), float(sim.geometry.pixel_mm))
    return tuple(  # type: ignore[return-value]
        PlanarImage(
            counts=np.asarray(counts, dtype=np.float32),
            view=view,
            view_rule="phantom (in memory)",
            pixel_spacing_mm=spacing,
            acquisition=acq,
            source=src,
            kind=SeriesKind.PLANAR_WHOLE_BODY,
        )
        for view, counts in (
            (View.ANTERIOR, sim.anterior_counts),
            (View.POSTERIOR, sim.posterior_counts),
        )
    )


def labels_to_model_grid(labels: np.ndarray, spacing_mm: tuple[float, float]) -> np.ndarray:
    """Class indices on the anterior grid -> the 4.8 mm model grid (uint8).

    Organ classes by nearest neighbour; lesion (and ignored) footprints by area fraction, so
    that a lesion smaller than a model pixel is not lost.
    """
    shape = model_shape(labels.shape, spacing_mm)
    out = resample(labels.astype(np.float32), shape, order=0).astype(np.uint8)
    out[(out == LESION_CLASS) | (out == IGNORE_INDEX)] = 0
    ignored = (
        resample((labels == IGNORE_INDEX).astype(np.float32), shape) >= LESION_RESAMPLE_FRACTION
    )
    lesion = (
        resample((labels == LESION_CLASS).astype(np.float32), shape) >= LESION_RESAMPLE_FRACTION
    )
    out[ignored] = IGNORE_INDEX
    out[lesion] = LESION_CLASS
    return out


def make_sample(spec: StudySpec, alignment: AlignmentConfig) -> Sample:
    """Simulate ``spec`` and return its normalised geometric mean and labels (4.8 mm grid)."""
    study = simulate_study(spec)
    index = study.primary_planar_index
    assert index is not None
    ant, post = planar_images(study, index)
    conj = conjugate_view(ant, post, config=alignment)
    spacing = conj.pixel_spacing_mm
    image = normalise(conj.image, spacing)
    labels = labels_to_model_grid(planar_labels(study, index), spacing)
    return Sample(image=image, labels=labels, phantom_seed=spec.seed)


def generate_samples(
    n: int, *, seed: int, alignment: AlignmentConfig, start: int = 0
) -> list[Sample]:
    """Training samples ``start`` .. ``start + n - 1`` of training ``seed`` (deterministic)."""
    return [make_sample(draw_sample_spec(seed, k), alignment) for k in range(start, start + n)]
