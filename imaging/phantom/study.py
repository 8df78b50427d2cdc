"""One phantom study end to end: simulate (in memory), then write DICOM and return the truth.

``kind``:

* ``"planar"``: 111In-pentetreotide whole-body anterior/posterior views;
* ``"spect-ct"``: 111In SPECT of the abdomen with its CT (same FrameOfReferenceUID);
* ``"all"`` (default): both of the above in one 111In study;
* ``"pet-ct"``: a 68Ga-DOTATATE PET/CT study (its own StudyInstanceUID), 60 min p.i.

The same seed gives the same body, lesions, images, UIDs and bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np

from octoscan.imaging.errors import InvalidInputError
from octoscan.imaging.phantom.activity import (
    ActivityModel,
    Tracer,
    activity_volume,
    draw_activity_model,
)
from octoscan.imaging.phantom.anatomy import Anatomy, Grid, Tissue, body_grid, build_anatomy
from octoscan.imaging.phantom.dicom_write import (
    StudyIdentity,
    WrittenSeries,
    check_compression,
    check_variants,
    make_identity,
    write_ct,
    write_pet,
    write_planar_whole_body,
    write_spect,
)
from octoscan.imaging.phantom.lesions import (
    LESION_PROFILES,
    Lesion,
    LesionSpec,
    add_lesions,
    draw_lesion_specs,
    place_lesions,
)
from octoscan.imaging.phantom.planar import PlanarGeometry, PlanarSimulation, simulate_planar
from octoscan.imaging.phantom.tomo import (
    CT_MATRIX,
    CT_PIXEL_MM,
    CT_SLICE_MM,
    TomoImage,
    centred_grid,
    ct_grid_for,
    pet_grid_for,
    simulate_ct,
    simulate_pet,
    simulate_spect,
    spect_grid,
)
from octoscan.imaging.phantom.truth import (
    LesionTruth,
    OrganTruth,
    PlanarLesionTruth,
    PlanarTruth,
    SeriesTruth,
    StudyTruth,
    measure_planar,
    surface_depths_mm,
)

KINDS: tuple[str, ...] = ("planar", "spect-ct", "pet-ct", "all")
MIN_COUNTS = 1.0e4
MAX_COUNTS = 2.0e7
PET_HOURS_POST_INJECTION = 1.0
PET_DEFAULT_SLICES_CT = 150


@dataclass(frozen=True)
class StudySpec:
    """Everything that defines one phantom study.

    ``lesions``: explicit specs, a number of random lesions, or None (1-6 random lesions).
    ``counts``: expected total counts of each anterior whole-body view (both photopeaks).
    ``hours_post_injection``: planar time points of the 111In study (the SPECT is taken at
    the latest one). ``ct_slices``: CT slice count (default: cover the SPECT, or 150 slices
    for PET/CT); the PET covers the CT's axial extent. ``posterior_shift_rc``: camera-head
    misalignment in pixels (None: drawn from the seed, up to +-3 rows and +-2 columns).
    ``lesion_profile`` ("mixed", "avid", "low") shapes random lesions (see ``LESION_PROFILES``).
    ``emission_fwhm_mm``: resolution (FWHM, mm) of the simulated SPECT or PET (None: the
    modality's default of :mod:`octoscan.imaging.phantom.tomo`, 13 mm and 6.5 mm; 4.5-30 mm,
    as the phantom's own 4 mm voxels blur by about 4 mm already); benchmarks
    vary it to see how scoring copes with a resolution it does not assume.
    """

    seed: int
    kind: str = "all"
    lesions: tuple[LesionSpec, ...] | int | None = None
    counts: float = 1.5e6
    ct_slices: int | None = None
    compress: str | None = None
    variants: tuple[str, ...] = ()
    hours_post_injection: tuple[float, ...] = (24.0,)
    splenectomy: bool = False
    diffuse_liver: bool = False
    voxel_mm: float = 4.0
    posterior_shift_rc: tuple[float, float] | None = None
    lesion_profile: str = "mixed"
    planar_rows: int = 1024
    planar_cols: int = 256
    planar_pixel_mm: float = 2.4
    emission_fwhm_mm: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidInputError(
                f"phantom kind {self.kind!r} unknown; expected one of {', '.join(KINDS)}",
                code="invalid_option",
            )
        if not MIN_COUNTS <= self.counts <= MAX_COUNTS:
            raise InvalidInputError(
                f"counts {self.counts:g} outside {MIN_COUNTS:g}-{MAX_COUNTS:g}",
                code="invalid_option",
            )
        if self.ct_slices is not None and not 1 <= self.ct_slices <= 1000:
            raise InvalidInputError(
                f"ct_slices {self.ct_slices} outside 1-1000", code="invalid_option"
            )
        if not self.hours_post_injection or any(
            not 0.5 <= h <= 200.0 for h in self.hours_post_injection
        ):
            raise InvalidInputError(
                f"hours_post_injection {self.hours_post_injection} must be 1-3 values in 0.5-200",
                code="invalid_option",
            )
        if not 2.0 <= self.voxel_mm <= 8.0:
            raise InvalidInputError(
                f"voxel_mm {self.voxel_mm} outside 2-8 mm", code="invalid_option"
            )
        if isinstance(self.lesions, int) and not 0 <= self.lesions <= 20:
            raise InvalidInputError(
                f"lesion count {self.lesions} outside 0-20", code="invalid_option"
            )
        if self.lesion_profile not in LESION_PROFILES:
            raise InvalidInputError(
                f"lesion profile {self.lesion_profile!r} unknown; expected one of "
                f"{', '.join(LESION_PROFILES)}",
                code="invalid_option",
            )
        if self.emission_fwhm_mm is not None and not 4.5 <= self.emission_fwhm_mm <= 30.0:
            # the emission phantom's own 4 mm voxels already blur by about 4 mm
            raise InvalidInputError(
                f"emission_fwhm_mm {self.emission_fwhm_mm} outside 4.5-30 mm",
                code="invalid_option",
            )
        check_variants(self.variants)
        check_compression(self.compress)

    @property
    def has_planar(self) -> bool:
        return self.kind in ("planar", "all")

    @property
    def has_spect(self) -> bool:
        return self.kind in ("spect-ct", "all")

    @property
    def is_pet(self) -> bool:
        return self.kind == "pet-ct"


@dataclass(frozen=True)
class PlanarTimepoint:
    """One planar acquisition: its activity model, simulation and measured truth."""

    hours_post_injection: float
    activity: ActivityModel
    simulation: PlanarSimulation
    truth: PlanarTruth
    lesions: tuple[PlanarLesionTruth, ...]


@dataclass(frozen=True)
class SimulatedStudy:
    """All images of one study in memory, plus what is needed to write and describe them."""

    spec: StudySpec
    anatomy: Anatomy
    grid: Grid
    labels: np.ndarray
    lesions: tuple[Lesion, ...]
    activity: ActivityModel  # the primary (scored) time point, or the PET model
    identity: StudyIdentity
    planar: tuple[PlanarTimepoint, ...] = ()
    spect: TomoImage | None = None
    ct: TomoImage | None = None
    pet: TomoImage | None = None
    frame_of_reference_uid: str | None = None
    volumes_ml: dict[Tissue, float] = field(default_factory=dict)

    @property
    def primary_planar_index(self) -> int | None:
        """Index of the scored planar time point: the latest one (24 h when present)."""
        if not self.planar:
            return None
        hours = [p.hours_post_injection for p in self.planar]
        return int(np.argmax(hours))


def _lesion_specs(spec: StudySpec, reference_ratio: float) -> tuple[LesionSpec, ...]:
    if isinstance(spec.lesions, tuple):
        return spec.lesions
    if isinstance(spec.lesions, int):
        n = spec.lesions
    else:
        n = int(np.random.default_rng([spec.seed, 111]).integers(1, 7))
    return draw_lesion_specs(
        spec.seed, n, spleen_ratio=reference_ratio, profile=spec.lesion_profile
    )


def simulate_study(spec: StudySpec) -> SimulatedStudy:
    """Build the body, place lesions and simulate every image of ``spec`` (no file written)."""
    anatomy = build_anatomy(spec.seed, splenectomy=spec.splenectomy)
    grid = body_grid(anatomy, voxel_mm=spec.voxel_mm)
    labels = anatomy.rasterize(grid)
    volumes = {
        t: float(np.count_nonzero(labels == t)) * grid.voxel_volume_ml
        for t in Tissue
        if t != Tissue.AIR
    }
    tracer = Tracer.GA68_DOTATATE if spec.is_pet else Tracer.IN111_PENTETREOTIDE
    hours_list = (PET_HOURS_POST_INJECTION,) if spec.is_pet else tuple(spec.hours_post_injection)
    primary_hours = max(hours_list)
    models = {
        h: draw_activity_model(
            tracer,
            spec.seed,
            hours_post_injection=h,
            weight_kg=anatomy.weight_kg,
            liver_volume_ml=volumes[Tissue.LIVER],
            diffuse_liver=spec.diffuse_liver,
        )
        for h in hours_list
    }
    primary = models[primary_hours]
    ref_tissue = Tissue.KIDNEY_LEFT if spec.splenectomy else Tissue.SPLEEN
    specs = _lesion_specs(spec, primary.ratio_to_liver[ref_tissue])
    lesions = place_lesions(
        specs, anatomy, labels, grid, seed=spec.seed, strict=isinstance(spec.lesions, tuple)
    )
    study_key = "dotatate" if spec.is_pet else "octreoscan"
    identity = make_identity(
        spec.seed,
        weight_kg=anatomy.weight_kg,
        height_m=round(anatomy.height_mm / 1000.0, 2),
        sex=anatomy.sex,
        study=study_key,
        study_description="GA68 DOTATATE PET/CT" if spec.is_pet else "OCTREOSCAN",
        injection_hour=9 if spec.is_pet else 10,
    )

    def concentration(model: ActivityModel) -> tuple[np.ndarray, np.ndarray]:
        normal = activity_volume(labels, grid, model, seed=spec.seed)
        return add_lesions(normal, grid, lesions, model.liver_kbq_per_ml), normal

    shift = spec.posterior_shift_rc
    if shift is None:
        rng = np.random.default_rng([spec.seed, 121])
        shift = (round(float(rng.uniform(-3, 3)), 1), round(float(rng.uniform(-2, 2)), 1))

    planar: list[PlanarTimepoint] = []
    primary_conc: np.ndarray | None = None
    for h in hours_list:
        conc, normal = concentration(models[h])
        if h == primary_hours:
            primary_conc = conc
        if not spec.has_planar:
            continue
        geometry = PlanarGeometry.whole_body(
            anatomy.height_mm,
            rows=spec.planar_rows,
            cols=spec.planar_cols,
            pixel_mm=spec.planar_pixel_mm,
        )
        sim = simulate_planar(
            conc,
            labels,
            grid,
            geometry,
            expected_counts=spec.counts,
            seed=spec.seed * 1000 + round(h * 10),
            posterior_shift_rc=shift,
            scan_velocity_mm_s=(1.0 if h >= 12.0 else 10.0 / 6.0),
            background_concentration=normal,
        )
        truth, les_truth = measure_planar(sim, labels, grid, lesions, hours_post_injection=h)
        planar.append(PlanarTimepoint(h, models[h], sim, truth, les_truth))
    assert primary_conc is not None

    spect = ct = pet = None
    frame_uid = None
    if spec.has_spect:
        sgrid = spect_grid(anatomy)
        spect = simulate_spect(
            primary_conc,
            grid,
            sgrid,
            liver_kbq_per_ml=primary.liver_kbq_per_ml,
            seed=spec.seed,
            **({"fwhm_mm": spec.emission_fwhm_mm} if spec.emission_fwhm_mm else {}),
        )
        ct = simulate_ct(
            anatomy, lesions, ct_grid_for(sgrid, n_slices=spec.ct_slices), seed=spec.seed
        )
        frame_uid = identity.uid("frame-of-reference", "spect-ct")
    elif spec.is_pet:
        n_ct = spec.ct_slices if spec.ct_slices is not None else PET_DEFAULT_SLICES_CT
        cgrid = centred_grid(
            (0.0, 0.0, round(0.665 * anatomy.height_mm, 1)),
            matrix=CT_MATRIX,
            pixel_mm=CT_PIXEL_MM,
            n_slices=n_ct,
            slice_mm=CT_SLICE_MM,
        )
        ct = simulate_ct(anatomy, lesions, cgrid, seed=spec.seed)
        pet = simulate_pet(
            primary_conc,
            grid,
            pet_grid_for(cgrid),
            liver_kbq_per_ml=primary.liver_kbq_per_ml,
            seed=spec.seed,
            **({"fwhm_mm": spec.emission_fwhm_mm} if spec.emission_fwhm_mm else {}),
        )
        frame_uid = identity.uid("frame-of-reference", "pet-ct")
    return SimulatedStudy(
        spec=spec,
        anatomy=anatomy,
        grid=grid,
        labels=labels,
        lesions=lesions,
        activity=primary,
        identity=identity,
        planar=tuple(planar),
        spect=spect,
        ct=ct,
        pet=pet,
        frame_of_reference_uid=frame_uid,
        volumes_ml=volumes,
    )


def _organ_truths(study: SimulatedStudy) -> tuple[OrganTruth, ...]:
    model = study.activity
    out = []
    for tissue in Tissue:
        if tissue == Tissue.AIR:
            continue
        volume = study.volumes_ml.get(tissue, 0.0)
        if volume <= 0.0:
            continue
        conc = model.kbq_per_ml(tissue)
        ratio = conc / model.liver_kbq_per_ml
        out.append(
            OrganTruth(
                name=tissue.name.lower(),
                concentration_kbq_per_ml=conc,
                ratio_to_liver=ratio,
                volume_ml=volume,
                suv=conc * model.suv_per_kbq_per_ml if model.suv_per_kbq_per_ml else None,
            )
        )
    return tuple(out)


def _lesion_truths(study: SimulatedStudy) -> tuple[LesionTruth, ...]:
    model = study.activity
    spleen = None if study.spec.splenectomy else model.ratio_to_liver[Tissue.SPLEEN]
    kidney = model.ratio_to_liver[Tissue.KIDNEY_LEFT]
    out = []
    for k, lesion in enumerate(study.lesions):
        conc = lesion.ratio_liver * model.liver_kbq_per_ml
        front, back = surface_depths_mm(study.labels, study.grid, lesion.center_mm)
        out.append(
            LesionTruth(
                id=lesion.id,
                site=lesion.site.value,
                center_lps_mm=lesion.center_mm,
                semi_axes_mm=lesion.semi_axes_mm,
                angle_deg=lesion.angle_deg,
                diameter_mm=lesion.diameter_mm,
                equivalent_diameter_mm=lesion.equivalent_diameter_mm,
                volume_ml=lesion.volume_ml,
                concentration_kbq_per_ml=conc,
                true_ratio_liver=lesion.ratio_liver,
                true_ratio_spleen=lesion.ratio_liver / spleen if spleen else None,
                true_ratio_kidney=lesion.ratio_liver / kidney,
                depth_anterior_mm=front,
                depth_posterior_mm=back,
                planar=tuple(tp.lesions[k] for tp in study.planar),
                suv=conc * model.suv_per_kbq_per_ml if model.suv_per_kbq_per_ml else None,
            )
        )
    return tuple(out)


def write_study(study: SimulatedStudy, out_dir: str | Path) -> StudyTruth:
    """Write every series of ``study`` under ``out_dir`` and return its truth.

    Folders: ``NM_WB_<h>H`` (or ``..._ANT``/``..._POST``), ``NM_SPECT``, ``CT``, ``PET``.
    """
    spec = study.spec
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    ts = check_compression(spec.compress)
    ident = study.identity
    written: list[WrittenSeries] = []
    model = study.activity
    number = 1
    for tp in study.planar:
        written += write_planar_whole_body(
            root,
            tp.simulation,
            ident,
            tp.activity.tracer,
            injected_activity_mbq=tp.activity.injected_activity_mbq,
            hours_post_injection=tp.hours_post_injection,
            series_number=number,
            variants=spec.variants,
            transfer_syntax=ts,
        )
        number = len(written) + 1
    if study.spect is not None and study.ct is not None:
        assert study.frame_of_reference_uid is not None
        written.append(
            write_spect(
                root,
                study.spect,
                ident,
                model.tracer,
                injected_activity_mbq=model.injected_activity_mbq,
                hours_post_injection=model.hours_post_injection,
                frame_of_reference_uid=study.frame_of_reference_uid,
                series_number=number,
                transfer_syntax=ts,
            )
        )
        written.append(
            write_ct(
                root,
                study.ct,
                ident,
                acquisition_datetime=ident.injection_datetime
                + timedelta(hours=model.hours_post_injection, minutes=30),
                frame_of_reference_uid=study.frame_of_reference_uid,
                series_number=number + 1,
                transfer_syntax=ts,
            )
        )
    if study.pet is not None and study.ct is not None:
        assert study.frame_of_reference_uid is not None
        written.append(
            write_ct(
                root,
                study.ct,
                ident,
                acquisition_datetime=ident.injection_datetime
                + timedelta(hours=model.hours_post_injection)
                - timedelta(minutes=2),
                frame_of_reference_uid=study.frame_of_reference_uid,
                series_number=1,
                transfer_syntax=ts,
            )
        )
        written.append(
            write_pet(
                root,
                study.pet,
                ident,
                model.tracer,
                injected_activity_mbq=model.injected_activity_mbq,
                hours_post_injection=model.hours_post_injection,
                frame_of_reference_uid=study.frame_of_reference_uid,
                series_number=2,
                transfer_syntax=ts,
            )
        )
    return describe_study(study, written)


def describe_study(study: SimulatedStudy, written: list[WrittenSeries] | None = None) -> StudyTruth:
    """The truth of ``study`` (with the written series when given)."""
    spec = study.spec
    model = study.activity
    series = tuple(
        SeriesTruth(
            role=w.role,
            modality=w.modality,
            series_instance_uid=w.series_instance_uid,
            series_description=w.series_description,
            folder=str(Path(w.files[0]).parent),
            n_files=len(w.files),
            hours_post_injection=w.hours_post_injection,
            frame_of_reference_uid=w.frame_of_reference_uid,
            sop_class_uid=w.sop_class_uid,
            transfer_syntax_uid=w.transfer_syntax_uid,
        )
        for w in (written or [])
    )
    return StudyTruth(
        seed=spec.seed,
        kind=spec.kind,
        tracer=model.tracer.tracer.value,
        radionuclide=model.tracer.radionuclide,
        study_instance_uid=study.identity.study_instance_uid,
        patient_name=study.identity.patient_name,
        patient_id=study.identity.patient_id,
        weight_kg=study.anatomy.weight_kg,
        height_m=round(study.anatomy.height_mm / 1000.0, 3),
        injected_activity_mbq=model.injected_activity_mbq,
        hours_post_injection=model.hours_post_injection,
        splenectomy=spec.splenectomy,
        diffuse_liver_involvement=spec.diffuse_liver,
        single_view="anterior-only" in spec.variants,
        variants=tuple(sorted(spec.variants)),
        organs=_organ_truths(study),
        lesions=_lesion_truths(study),
        planar=tuple(tp.truth for tp in study.planar),
        primary_planar_index=study.primary_planar_index,
        series=series,
        count_level=spec.counts if spec.has_planar else None,
    )


def generate_study(spec: StudySpec, out_dir: str | Path) -> StudyTruth:
    """Simulate and write one study; returns its truth (grades are added by pipelines)."""
    return write_study(simulate_study(spec), out_dir)
