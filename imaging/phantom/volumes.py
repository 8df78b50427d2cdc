"""In-memory Volumes of a simulated phantom study, as the DICOM loaders return them.

For benchmarks and tests that score a phantom without writing DICOM: the emission volume
(SPECT in counts, or PET in SUVbw with its SUV factor) and the CT in HU, each with the
phantom grid's (plane, row, col) -> LPS affine, the study's UIDs and its frame of reference.
No reconstructed resolution is recorded, as in most real headers.
"""

from __future__ import annotations

import numpy as np

from octoscan.imaging.phantom.study import SimulatedStudy
from octoscan.imaging.types import AcquisitionInfo, SeriesKind, SourceRef, Volume

__all__ = ["study_volumes"]


def study_volumes(study: SimulatedStudy) -> tuple[Volume, Volume | None]:
    """(emission, CT or None) of ``study``; raises ValueError when it has no emission
    volume (a planar-only study)."""
    model = study.activity
    uid = study.identity.study_instance_uid
    frame = study.frame_of_reference_uid
    acq = AcquisitionInfo(
        modality="PT" if study.pet is not None else "NM",
        radionuclide=model.tracer.radionuclide,
        radiopharmaceutical=model.tracer.radiopharmaceutical,
        injected_activity_mbq=model.injected_activity_mbq,
        hours_post_injection=model.hours_post_injection,
        patient_weight_kg=study.anatomy.weight_kg,
    )
    if study.pet is not None:
        factor = float(model.suv_per_kbq_per_ml) / 1000.0  # Bq/mL -> SUVbw
        emission = Volume(
            array=(study.pet.array * np.float32(factor)).astype(np.float32),
            affine=study.pet.grid.affine,
            units="SUVbw",
            kind=SeriesKind.PET,
            acquisition=acq,
            source=SourceRef(uid, f"{uid}.2", frame_of_reference_uid=frame),
            suv_factor=factor,
        )
    elif study.spect is not None:
        emission = Volume(
            array=np.asarray(study.spect.array, dtype=np.float32),
            affine=study.spect.grid.affine,
            units="counts",
            kind=SeriesKind.SPECT,
            acquisition=acq,
            source=SourceRef(uid, f"{uid}.20", frame_of_reference_uid=frame),
        )
    else:
        raise ValueError("the study has no SPECT or PET volume (planar only)")
    ct = None
    if study.ct is not None:
        ct = Volume(
            array=np.asarray(study.ct.array, dtype=np.float32),
            affine=study.ct.grid.affine,
            units="HU",
            kind=SeriesKind.CT,
            acquisition=AcquisitionInfo(modality="CT"),
            source=SourceRef(uid, f"{uid}.21", frame_of_reference_uid=frame),
        )
    return emission, ct
