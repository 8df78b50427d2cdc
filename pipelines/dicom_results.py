"""octoscan's findings as standard DICOM objects, in the source study (issue 9).

Per scored study, under ``DIR/<study key>/dicom/``:

* ``octoscan-sr-planar.dcm``: a Comprehensive SR, TID 1500 measurement report of the planar
  score (:mod:`octoscan.pipelines.dicom_sr`), series "octoscan SR";
* ``octoscan-sc-planar.dcm``: the overlay summary panel as an RGB Secondary Capture
  (:mod:`octoscan.pipelines.dicom_sc`), series "octoscan overlay";
* per emission volume scored tomographically (:class:`VolumeFindings`; ``<k>`` a short hash
  of its SeriesInstanceUID): ``octoscan-seg-<k>.dcm``, a BINARY Segmentation of the lesions
  and reference regions on the volume's source grid (:mod:`octoscan.pipelines.dicom_seg`),
  series "octoscan SEG"; ``octoscan-sr-<k>.dcm``, its measurement report referencing those
  segments; ``octoscan-sc-<k>.dcm``, the coronal MIP overlay.

Every object belongs to the source StudyInstanceUID, carries the source's Patient module (or
its pseudonym) and a SeriesDescription starting with "octoscan", so discovery skips it
(code ``octoscan_output``). UIDs and dates are derived, never drawn or read from the clock
(:mod:`octoscan.pipelines.dicom_uids`): the same inputs, config and version give the same
bytes. Files are written atomically; earlier ``octoscan-*.dcm`` files of the folder that a
run no longer produces are removed.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from octoscan.imaging.dicom_io import read_header
from octoscan.imaging.errors import InvalidInputError, OctoscanError
from octoscan.imaging.types import PlanarImage, SeriesKind, View, Volume
from octoscan.models.types import Decision, Lesion, PlanarScore, ReferenceRegion
from octoscan.pipelines.atomic import write_bytes_atomic
from octoscan.pipelines.dicom_uids import (
    body_part,
    encode,
    finish_object,
    object_identity,
)
from octoscan.pipelines.result_json import decision_to_dict, lesion_to_dict, reference_to_dict
from octoscan.pipelines.study import StudyOutcome, octoscan_version

if TYPE_CHECKING:  # highdicom is optional: the modules that need it load on first use
    from octoscan.pipelines.dicom_sr import SourceFrames

log = logging.getLogger(__name__)

DICOM_DIR_NAME = "dicom"
FILE_PREFIX = "octoscan-"
FILE_SUFFIX = ".dcm"
SR_SERIES = ("octoscan SR", 9901)
SEG_SERIES = ("octoscan SEG", 9902)
SC_SERIES = ("octoscan overlay", 9903)
_PERSON_NAME_WARNING = r".*unlikely to represent the intended person name"
SC_MAX_HEIGHT_PX = 1024
"""The planar summary panel is rendered at the largest integer scale that keeps the scoring
image within this many rows (at least native pixels)."""


@dataclass(frozen=True)
class VolumeFindings:
    """Tomographic findings on one emission volume (reconstructed SPECT or PET).

    Masks of ``lesions`` and ``references`` are boolean (plane, row, col) on ``volume``'s
    grid; ``volume.source.paths`` must still hold the files it was loaded from. From a
    :class:`~octoscan.models.tomo_score.TomoScore` ``s`` of ``volume``:
    ``VolumeFindings(volume, s.lesions, s.references, s.decision, s.config_name,
    s.warnings, ct=ct)``. ``ct`` (optional) is fused into the overlay.
    """

    volume: Volume
    lesions: tuple[Lesion, ...]
    references: tuple[ReferenceRegion, ...]
    decision: Decision
    config_name: str
    warnings: tuple[str, ...] = ()
    ct: Volume | None = field(default=None, compare=False, repr=False)


def _require_highdicom() -> None:
    try:
        import highdicom  # noqa: F401
    except ImportError as exc:
        raise OctoscanError(
            "DICOM results (SR, SEG, SC) need highdicom, which is not installed: install "
            "octoscan with the 'dicom' extra (pip install 'octoscan[dicom]')",
            code="highdicom_missing",
        ) from exc


def _short_key(uid: str) -> str:
    return hashlib.sha256(uid.encode("ascii", "replace")).hexdigest()[:12]


def _source_header(path: str, sop_instance_uid: str | None) -> Dataset:
    header = read_header(path)
    found = str(header.get("SOPInstanceUID") or "")
    if sop_instance_uid and found != sop_instance_uid:
        raise InvalidInputError(
            f"SOPInstanceUID {found!r}; expected {sop_instance_uid!r}, the object that was "
            "scored: the file changed since scoring",
            code="dicom_source_mismatch",
            path=path,
        )
    return header


# --------------------------------------------------------------------------- planar


def _planar_note(score: PlanarScore, frames: SourceFrames | None) -> str:
    """How the planar values were measured and where the regions are drawn (SR text)."""
    if frames is None:
        where = (
            "the stored frames of the scored view could not be located again: regions are "
            "not drawn (positions are on the scoring grid, see result.json)"
        )
    else:
        numbers = ", ".join(str(n) for n in frames.frame_numbers) or "1"
        side = "mirrored back onto " if frames.mirrored else "on "
        where = (
            f"regions drawn {side}the {frames.view} view: SOP Instance "
            f"{frames.sop_instance_uid}, frame(s) {numbers}"
        )
    if score.grid == "posterior_mirrored":
        how = "posterior view only, scored mirrored left-right"
    elif len(score.views_used) > 1:
        shift = score.posterior_shift_rc
        moved = (
            f" and shifted by ({shift[0]:.2f}, {shift[1]:.2f}) pixels (row, col)"
            if shift is not None
            else ""
        )
        how = (
            "conjugate-view geometric mean of the anterior and posterior views on the "
            f"anterior grid (posterior mirrored left-right{moved})"
        )
    else:
        how = f"{score.views_used[0]} view only"
    return f"{how}; {where}"


def _planar_objects(
    outcome: StudyOutcome,
    *,
    config_hash: str,
    pseudonymise: bool,
    pseudonym_key: bytes,
) -> dict[str, Dataset]:
    from octoscan.pipelines.dicom_sc import build_secondary_capture, fit_panel
    from octoscan.pipelines.dicom_sr import (
        ReportFindings,
        build_sr,
        lesion_tracking_id,
        locate_planar_source,
        measurement_report,
        planar_region,
        reference_tracking_id,
        scored_view,
        view_image,
    )
    from octoscan.pipelines.overlays import render_planar_overlays

    score, result = outcome.planar, outcome.result
    assert score is not None and result is not None
    images = list(outcome.planar_images)
    main = scored_view(score, images)
    used: dict[str, PlanarImage] = {}
    for name in score.views_used:
        if name in (View.ANTERIOR.value, View.POSTERIOR.value):
            im = view_image(score, images, View(name))
            if im is not None:
                used[name] = im
    anchor = main or next(iter(used.values()), None) or (images[0] if images else None)
    if anchor is None or not anchor.source.paths:
        raise InvalidInputError(
            "no planar source image to attach the DICOM results to",
            code="dicom_source_missing",
        )
    sop = anchor.source.sop_instance_uids[0] if anchor.source.sop_instance_uids else None
    header = _source_header(anchor.source.paths[0], sop)
    version = str(result["provenance"]["octoscan_version"])
    identity = object_identity(
        header,
        config_hash=config_hash,
        software_version=version,
        pseudonymise=pseudonymise,
        pseudonym_key=pseudonym_key,
    )
    part = "planar " + " ".join(sorted(score.series_instance_uids))
    frames = (
        locate_planar_source(main, mirrored=score.grid == "posterior_mirrored")
        if main is not None
        else None
    )
    regions: dict[str, Any] = {}
    notes: list[str] = []
    if frames is not None:
        for les in score.lesions:
            tid = lesion_tracking_id(les.id)
            regions[tid], note = planar_region(
                frames,
                mask=les.mask,
                center_rc=les.center_rc,
                radius_mm=les.diameter_mm / 2.0,
                spacing_mm=score.pixel_spacing_mm,
            )
            if note:
                notes.append(f"{tid}: {note}")
        for ref in score.references:
            tid = reference_tracking_id(ref.organ)
            regions[tid], note = planar_region(
                frames,
                mask=ref.mask,
                center_rc=ref.center_rc,
                radius_mm=ref.radius_mm,
                spacing_mm=score.pixel_spacing_mm,
            )
            if note:
                notes.append(f"{tid}: {note}")
    units = score.lesions[0].units if score.lesions else "counts/pixel"
    findings = ReportFindings(
        lesions=tuple(result["lesions"]),
        references=dict(result["references"]),
        decision=result["decision"],
        warnings=(*result["warnings"], *notes),
        units=units,
        config_name=str(result["provenance"]["config_name"]),
        config_hash=config_hash,
        scoring_note=_planar_note(score, frames),
    )
    whole_body = anchor.kind == SeriesKind.PLANAR_WHOLE_BODY
    procedure: Code = (
        codes.LN.RadionuclideScanOfWholeBody if whole_body else codes.SCT.NuclearMedicineProcedure
    )
    report = measurement_report(findings, regions, identity, part=part, procedure=procedure)
    evidence_headers = [header]
    for im in used.values():
        if im.source.paths and im.source.paths[0] != anchor.source.paths[0]:
            evidence_headers.append(_source_header(im.source.paths[0], None))
    evidence = [identity.with_patient(h) for h in evidence_headers]
    sr = build_sr(
        report,
        evidence,
        identity,
        series_instance_uid=identity.uid("series", "SR"),
        sop_instance_uid=identity.uid("instance", "SR", part),
        series_number=SR_SERIES[1],
        instance_number=1,
    )
    finish_object(sr, identity, series_description=SR_SERIES[0])

    rows = score.scoring_image.shape[0]
    scale = max(1, SC_MAX_HEIGHT_PX // max(rows, 1))
    panel = fit_panel(render_planar_overlays(score, used or None, scale=scale)["summary"])
    reference = identity.with_patient(header)
    sc = build_secondary_capture(
        panel,
        reference,
        identity,
        series_instance_uid=identity.uid("series", "SC"),
        sop_instance_uid=identity.uid("instance", "SC", part),
        series_number=SC_SERIES[1],
        instance_number=1,
        sources=[(str(h.SOPClassUID), str(h.SOPInstanceUID)) for h in evidence_headers],
        comment=f"octoscan planar overlay; {result['decision']['status']}; decision support",
    )
    finish_object(
        sc,
        identity,
        series_description=SC_SERIES[0],
        body_part_examined=body_part([header], "WHOLEBODY" if whole_body else "ABDOMEN"),
    )
    return {
        f"{FILE_PREFIX}sr-planar{FILE_SUFFIX}": sr,
        f"{FILE_PREFIX}sc-planar{FILE_SUFFIX}": sc,
    }


# --------------------------------------------------------------------------- tomographic


def _volume_objects(
    findings_in: VolumeFindings,
    index: int,
    *,
    study_instance_uid: str,
    config_hash: str,
    version: str,
    pseudonymise: bool,
    pseudonym_key: bytes,
) -> dict[str, Dataset]:
    import highdicom as hd

    from octoscan.pipelines.dicom_sc import build_secondary_capture, fit_panel
    from octoscan.pipelines.dicom_seg import build_segmentation, segment_specs
    from octoscan.pipelines.dicom_sr import ReportFindings, build_sr, measurement_report
    from octoscan.pipelines.overlays import render_volume_overlays

    volume = findings_in.volume
    if volume.source.study_instance_uid != study_instance_uid:
        raise ValueError(
            f"VolumeFindings.volume belongs to study {volume.source.study_instance_uid!r}; "
            f"expected the outcome's {study_instance_uid!r}"
        )
    if volume.kind not in (SeriesKind.SPECT, SeriesKind.PET):
        raise ValueError(
            f"VolumeFindings.volume is of kind {volume.kind.value!r}; expected an emission "
            "volume (spect or pet)"
        )
    if not volume.source.paths:
        raise InvalidInputError(
            "emission volume has no source paths; expected the files it was loaded from",
            code="dicom_source_missing",
        )
    sop = volume.source.sop_instance_uids[0] if volume.source.sop_instance_uids else None
    header = _source_header(volume.source.paths[0], sop)
    identity = object_identity(
        header,
        config_hash=config_hash,
        software_version=version,
        pseudonymise=pseudonymise,
        pseudonym_key=pseudonym_key,
    )
    series_uid = volume.source.series_instance_uid
    part = f"volume {series_uid}"
    key = _short_key(series_uid)
    default_part = "WHOLEBODY" if volume.kind is SeriesKind.PET else "ABDOMEN"
    region_body_part = body_part([header], default_part)
    out: dict[str, Dataset] = {}
    regions: dict[str, Any] = {}
    evidence = [identity.with_patient(header)]
    specs = segment_specs(
        findings_in.lesions, findings_in.references, identity, part=part, shape=volume.shape
    )
    if specs:
        seg = build_segmentation(
            volume,
            specs,
            identity,
            series_instance_uid=identity.uid("series", "SEG", series_uid),
            sop_instance_uid=identity.uid("instance", "SEG", part),
            series_number=SEG_SERIES[1] + 10 * index,
            instance_number=1,
        )
        finish_object(
            seg, identity, series_description=SEG_SERIES[0], body_part_examined=region_body_part
        )
        out[f"{FILE_PREFIX}seg-{key}{FILE_SUFFIX}"] = seg
        source_series = hd.sr.SourceSeriesForSegmentation(series_uid)
        for number, spec in enumerate(specs, start=1):
            regions[spec.tracking_id] = hd.sr.ReferencedSegment(
                sop_class_uid=seg.SOPClassUID,
                sop_instance_uid=seg.SOPInstanceUID,
                segment_number=number,
                source_series=source_series,
            )
        evidence.append(seg)
    modality = "PET" if volume.kind is SeriesKind.PET else "SPECT"
    findings = ReportFindings(
        lesions=tuple(lesion_to_dict(les) for les in findings_in.lesions),
        references={ref.organ: reference_to_dict(ref) for ref in findings_in.references},
        decision=decision_to_dict(findings_in.decision),
        warnings=tuple(findings_in.warnings),
        units=volume.units,
        config_name=findings_in.config_name,
        config_hash=config_hash,
        scoring_note=(
            f"{modality} emission volume, series {series_uid}; regions are segments of the "
            "octoscan SEG on its grid"
        ),
    )
    procedure: Code = codes.LN.PETWholeBody if volume.kind is SeriesKind.PET else codes.SCT.SPECT
    report = measurement_report(findings, regions, identity, part=part, procedure=procedure)
    sr = build_sr(
        report,
        evidence,
        identity,
        series_instance_uid=identity.uid("series", "SR"),
        sop_instance_uid=identity.uid("instance", "SR", part),
        series_number=SR_SERIES[1],
        instance_number=2 + index,
    )
    finish_object(sr, identity, series_description=SR_SERIES[0])
    out[f"{FILE_PREFIX}sr-{key}{FILE_SUFFIX}"] = sr
    panel = fit_panel(
        render_volume_overlays(volume, findings_in.lesions, findings_in.references, findings_in.ct)[
            "mip"
        ]
    )
    sc = build_secondary_capture(
        panel,
        identity.with_patient(header),
        identity,
        series_instance_uid=identity.uid("series", "SC"),
        sop_instance_uid=identity.uid("instance", "SC", part),
        series_number=SC_SERIES[1],
        instance_number=2 + index,
        sources=[(str(header.SOPClassUID), str(header.SOPInstanceUID))],
        comment=(
            f"octoscan {modality} coronal MIP overlay; {findings_in.decision.status}; "
            "decision support"
        ),
    )
    finish_object(
        sc, identity, series_description=SC_SERIES[0], body_part_examined=region_body_part
    )
    out[f"{FILE_PREFIX}sc-{key}{FILE_SUFFIX}"] = sc
    return out


# --------------------------------------------------------------------------- entry points


def render_dicom_results(
    outcome: StudyOutcome,
    *,
    config_hash: str,
    pseudonymise: bool = False,
    pseudonym_key: bytes = b"",
    volumes: Sequence[VolumeFindings] = (),
) -> dict[str, bytes]:
    """The DICOM objects of one outcome: file name -> Part 10 bytes (module docstring).

    A failed outcome (or one with nothing scored) has no objects: the result is empty.
    Raises :class:`OctoscanError` (code ``highdicom_missing``) without highdicom,
    :class:`InvalidInputError` (codes ``dicom_source_missing``, ``dicom_source_mismatch``
    and the readers' codes) when the source files are gone or changed since scoring, and
    ValueError for ``pseudonymise`` without a key, a volume of another kind than SPECT/PET
    or of another study, or a mask off its volume's grid.
    """
    if outcome.status != "ok" or outcome.result is None:
        return {}
    _require_highdicom()
    objects: dict[str, Dataset] = {}
    version = str(outcome.result.get("provenance", {}).get("octoscan_version") or "")
    version = version or octoscan_version()
    with warnings.catch_warnings():
        # highdicom warns about single-component names ("ANONYMOUS"): the source's name is
        # copied as it is, so the warning says nothing the user can act on
        warnings.filterwarnings("ignore", message=_PERSON_NAME_WARNING, category=UserWarning)
        if outcome.planar is not None:
            objects.update(
                _planar_objects(
                    outcome,
                    config_hash=config_hash,
                    pseudonymise=pseudonymise,
                    pseudonym_key=pseudonym_key,
                )
            )
        for index, findings in enumerate(volumes):
            objects.update(
                _volume_objects(
                    findings,
                    index,
                    study_instance_uid=outcome.study_instance_uid,
                    config_hash=config_hash,
                    version=version,
                    pseudonymise=pseudonymise,
                    pseudonym_key=pseudonym_key,
                )
            )
    return {name: encode(ds) for name, ds in sorted(objects.items())}


def write_dicom_files(study_dir: str | Path, files: Mapping[str, bytes]) -> list[Path]:
    """Write ``files`` under ``study_dir/dicom/`` atomically; remove older octoscan files
    of that folder that ``files`` does not name. Returns the written paths, sorted."""
    folder = Path(study_dir) / DICOM_DIR_NAME
    written = [write_bytes_atomic(folder / name, data) for name, data in sorted(files.items())]
    if folder.is_dir():
        for old in folder.glob(f"{FILE_PREFIX}*{FILE_SUFFIX}"):
            if old.name not in files:
                old.unlink(missing_ok=True)
    return written


def write_dicom_results(
    outcome: StudyOutcome,
    study_dir: str | Path,
    *,
    pseudonymise: bool = False,
    pseudonym_key: bytes = b"",
    config_hash: str,
    volumes: Sequence[VolumeFindings] = (),
) -> list[Path]:
    """Write the DICOM objects of ``outcome`` under ``study_dir/dicom/``; returns their paths.

    See :func:`render_dicom_results` for what is written and raised. A failed outcome
    writes nothing (and leaves the folder alone).
    """
    files = render_dicom_results(
        outcome,
        config_hash=config_hash,
        pseudonymise=pseudonymise,
        pseudonym_key=pseudonym_key,
        volumes=volumes,
    )
    if not files:
        return []
    return write_dicom_files(study_dir, files)
