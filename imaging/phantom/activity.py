"""Activity concentrations of the SSTR phantom: 111In-pentetreotide (4 h, 24 h) and 68Ga-DOTATATE.

Concentrations are drawn per study (seeded) as ratios to *normal* liver and converted to kBq/mL
at the acquisition time. Sources for the relative values:

* 111In-pentetreotide: absorbed dose per unit activity (ICRP Publication 80, as tabulated by
  Walker et al., J Nucl Med 2013;54:855, Table 3) is 0.32 mSv/MBq for spleen, 0.45 for
  kidneys, 0.07 for liver: spleen and kidneys accumulate about 4-6 times the liver's
  time-integrated concentration. On planar Octreoscan images the spleen is the most intense
  organ, kidneys are high (more so on the posterior view), the liver is moderate; urine makes
  the bladder variable; gallbladder and bowel activity appear at 24 h (Kwekkeboom & Krenning,
  Semin Nucl Med 2002;32:84; EANM procedure guideline for SRS, Bombardieri et al., Eur J Nucl
  Med Mol Imaging 2010;37:1441). Background (blood pool, soft tissue) is higher at 4 h than
  at 24 h.
* 68Ga-DOTATATE at about 60 min: mean SUVmax in normal organs spleen 24.7, kidneys 14.3,
  adrenals 13.7, pituitary 9.7, liver 9.1 (Kuyumcu et al., Ann Nucl Med 2013;27:538);
  organ *means* are drawn somewhat below those maxima.

The liver's absolute concentration follows from an assumed fractional uptake of the injected
activity (111In: about 2 % in the liver at 24 h; 68Ga: from the liver SUV), decayed to the
acquisition time. Absolute values only matter for SPECT/PET units; planar counts are scaled to
the requested count level.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from octoscan.imaging.phantom.anatomy import Grid, Tissue


class Tracer(enum.StrEnum):
    IN111_PENTETREOTIDE = "In-111 pentetreotide"
    GA68_DOTATATE = "Ga-68 DOTATATE"


@dataclass(frozen=True)
class CodedConcept:
    """A DICOM code (value, scheme designator, meaning)."""

    value: str
    scheme: str
    meaning: str


@dataclass(frozen=True)
class TracerInfo:
    """Physical and coding facts of a radiopharmaceutical.

    Half-lives: 111In 2.8047 d, 68Ga 67.71 min (NNDC/DDEP nuclear data). 111In photopeaks 171
    and 245 keV. Codes from DICOM CID 4020 (radionuclides) and CID 25 (radiopharmaceuticals).
    """

    tracer: Tracer
    radionuclide: str
    radionuclide_code: CodedConcept
    radiopharmaceutical: str
    radiopharmaceutical_code: CodedConcept | None
    half_life_s: float
    photopeaks_kev: tuple[float, ...]


TRACERS: dict[Tracer, TracerInfo] = {
    Tracer.IN111_PENTETREOTIDE: TracerInfo(
        tracer=Tracer.IN111_PENTETREOTIDE,
        radionuclide="In-111",
        radionuclide_code=CodedConcept("56609000", "SCT", "^111^Indium"),
        radiopharmaceutical="pentetreotide",
        radiopharmaceutical_code=CodedConcept("446800006", "SCT", "Indium (111-In) pentetreotide"),
        half_life_s=2.8047 * 86400.0,
        photopeaks_kev=(171.3, 245.4),
    ),
    Tracer.GA68_DOTATATE: TracerInfo(
        tracer=Tracer.GA68_DOTATATE,
        radionuclide="Ga-68",
        radionuclide_code=CodedConcept("35337001", "SCT", "^68^Gallium"),
        radiopharmaceutical="DOTATATE",
        radiopharmaceutical_code=None,
        half_life_s=67.71 * 60.0,
        photopeaks_kev=(511.0,),
    ),
}

# Ranges (lo, hi) of the ratio to normal liver, drawn uniformly per study.
_IN111_24H: dict[Tissue, tuple[float, float]] = {
    Tissue.LIVER: (1.0, 1.0),
    Tissue.SPLEEN: (4.5, 6.5),
    Tissue.KIDNEY_LEFT: (3.2, 4.5),
    Tissue.KIDNEY_RIGHT: (3.2, 4.5),
    Tissue.BLADDER: (0.5, 4.0),
    Tissue.BOWEL: (0.3, 1.0),
    Tissue.GALLBLADDER: (0.5, 3.0),
    Tissue.THYROID: (0.5, 1.0),
    Tissue.PITUITARY: (0.8, 1.5),
    Tissue.PANCREAS: (0.12, 0.25),
    Tissue.ADRENAL: (0.4, 0.8),
    Tissue.STOMACH: (0.10, 0.20),
    Tissue.HEART: (0.06, 0.10),
    Tissue.SOFT_TISSUE: (0.04, 0.07),
    Tissue.FAT: (0.02, 0.04),
    Tissue.LUNG: (0.02, 0.03),
    Tissue.BONE: (0.06, 0.10),
    Tissue.BRAIN: (0.005, 0.01),
}
_IN111_4H: dict[Tissue, tuple[float, float]] = {
    **_IN111_24H,
    Tissue.SPLEEN: (4.0, 5.5),
    Tissue.KIDNEY_LEFT: (3.2, 4.5),
    Tissue.KIDNEY_RIGHT: (3.2, 4.5),
    Tissue.BLADDER: (3.0, 10.0),
    Tissue.BOWEL: (0.04, 0.10),
    Tissue.GALLBLADDER: (0.1, 0.2),
    Tissue.HEART: (0.25, 0.40),
    Tissue.SOFT_TISSUE: (0.10, 0.15),
    Tissue.FAT: (0.05, 0.08),
    Tissue.LUNG: (0.05, 0.08),
    Tissue.BONE: (0.10, 0.15),
}
# 68Ga-DOTATATE organ mean SUV ranges (see module docstring).
_GA68_SUV: dict[Tissue, tuple[float, float]] = {
    Tissue.LIVER: (6.0, 10.0),
    Tissue.SPLEEN: (17.0, 28.0),
    Tissue.KIDNEY_LEFT: (10.0, 16.0),
    Tissue.KIDNEY_RIGHT: (10.0, 16.0),
    Tissue.BLADDER: (10.0, 60.0),
    Tissue.BOWEL: (2.0, 4.0),
    Tissue.GALLBLADDER: (0.5, 1.0),
    Tissue.THYROID: (2.0, 4.0),
    Tissue.PITUITARY: (6.0, 10.0),
    Tissue.PANCREAS: (3.0, 5.0),
    Tissue.ADRENAL: (9.0, 14.0),
    Tissue.STOMACH: (3.0, 5.0),
    Tissue.HEART: (1.0, 1.5),
    Tissue.SOFT_TISSUE: (0.5, 0.8),
    Tissue.FAT: (0.2, 0.4),
    Tissue.LUNG: (0.3, 0.5),
    Tissue.BONE: (0.8, 1.2),
    Tissue.BRAIN: (0.05, 0.15),
}

IN111_LIVER_FRACTION_24H = 0.020  # fraction of injected activity in the liver (decay-free)
IN111_LIVER_FRACTION_4H = 0.025
IN111_INJECTED_MBQ = (180.0, 222.0)  # package insert: 111 MBq planar, 222 MBq with SPECT
GA68_INJECTED_MBQ_PER_KG = (1.8, 2.2)  # about 2 MBq/kg (EANM/SNMMI 2018 guideline: 100-200 MBq)


@dataclass(frozen=True)
class ActivityModel:
    """True activity concentrations of one study at the acquisition start.

    ``ratio_to_liver`` maps each tissue to its concentration over *normal* liver;
    ``liver_kbq_per_ml`` is normal liver in kBq/mL. With ``diffuse_liver_ratio`` set, the
    liver is diffusely involved: its mean is that multiple of normal liver, mottled.
    ``suv_per_kbq_per_ml`` converts kBq/mL to SUVbw (PET only).
    """

    tracer: TracerInfo
    hours_post_injection: float
    injected_activity_mbq: float
    weight_kg: float
    liver_kbq_per_ml: float
    ratio_to_liver: Mapping[Tissue, float]
    diffuse_liver_ratio: float | None = None
    suv_per_kbq_per_ml: float | None = None

    def kbq_per_ml(self, tissue: Tissue) -> float:
        """Concentration (kBq/mL) of a normal tissue; diffuse liver gives the involved mean."""
        ratio = self.ratio_to_liver.get(tissue, 0.0)
        if tissue == Tissue.LIVER and self.diffuse_liver_ratio is not None:
            ratio = self.diffuse_liver_ratio
        return ratio * self.liver_kbq_per_ml

    @property
    def decay_factor(self) -> float:
        """Fraction of the injected activity not yet decayed at the acquisition start."""
        return 0.5 ** (self.hours_post_injection * 3600.0 / self.tracer.half_life_s)


def draw_activity_model(
    tracer: Tracer,
    seed: int,
    *,
    hours_post_injection: float,
    weight_kg: float,
    liver_volume_ml: float,
    diffuse_liver: bool = False,
) -> ActivityModel:
    """Draw the organ concentrations of one study (same seed and arguments, same model).

    For 111In the ratio table of the nearest time point (4 h or 24 h) is used; a time before
    12 h counts as early.
    """
    rng = np.random.default_rng([seed, 202, round(hours_post_injection * 100)])
    info = TRACERS[tracer]
    if tracer == Tracer.IN111_PENTETREOTIDE:
        early = hours_post_injection < 12.0
        table = _IN111_4H if early else _IN111_24H
        ratios = {t: float(rng.uniform(lo, hi)) for t, (lo, hi) in table.items()}
        injected = float(rng.uniform(*IN111_INJECTED_MBQ))
        decay = 0.5 ** (hours_post_injection * 3600.0 / info.half_life_s)
        fraction = IN111_LIVER_FRACTION_4H if early else IN111_LIVER_FRACTION_24H
        liver = injected * 1000.0 * decay * fraction / liver_volume_ml
        suv_factor = None
        diffuse = float(rng.uniform(0.85, 1.15)) * ratios[Tissue.SPLEEN] if diffuse_liver else None
    else:
        suv = {t: float(rng.uniform(lo, hi)) for t, (lo, hi) in _GA68_SUV.items()}
        ratios = {t: v / suv[Tissue.LIVER] for t, v in suv.items()}
        injected = round(float(rng.uniform(*GA68_INJECTED_MBQ_PER_KG)) * weight_kg, 1)
        decay = 0.5 ** (hours_post_injection * 3600.0 / info.half_life_s)
        # SUVbw = C[kBq/mL] / (A_inj[kBq] * decay / weight[g])  (1 g/mL tissue density)
        suv_factor = weight_kg * 1000.0 / (injected * 1000.0 * decay)
        liver = suv[Tissue.LIVER] / suv_factor
        diffuse = float(rng.uniform(0.85, 1.15)) * ratios[Tissue.SPLEEN] if diffuse_liver else None
    ratios[Tissue.KIDNEY_RIGHT] = ratios[Tissue.KIDNEY_LEFT]  # one kidney value per study
    return ActivityModel(
        tracer=info,
        hours_post_injection=hours_post_injection,
        injected_activity_mbq=round(injected, 1),
        weight_kg=weight_kg,
        liver_kbq_per_ml=liver,
        ratio_to_liver=ratios,
        diffuse_liver_ratio=diffuse,
        suv_per_kbq_per_ml=suv_factor,
    )


def activity_volume(
    labels: np.ndarray, grid: Grid, model: ActivityModel, *, seed: int
) -> np.ndarray:
    """Concentration (kBq/mL, float32, (plane,row,col)) of the normal tissues on ``grid``.

    A diffusely involved liver gets a mottled pattern: a Gaussian random field smoothed to
    about 20 mm FWHM, +-35 % (1 SD) around ``diffuse_liver_ratio``, floored at normal liver.
    Lesions are added separately (:func:`octoscan.imaging.phantom.lesions.add_lesions`).
    """
    lut = np.zeros(256, dtype=np.float32)
    for tissue in Tissue:
        lut[int(tissue)] = model.kbq_per_ml(tissue)
    conc = lut[labels]
    if model.diffuse_liver_ratio is not None:
        rng = np.random.default_rng([seed, 303])
        liver = labels == Tissue.LIVER
        field = rng.standard_normal(labels.shape).astype(np.float32)
        sigma_vox = [20.0 / 2.3548 / s for s in grid.spacing_mm]
        field = ndimage.gaussian_filter(field, sigma_vox, mode="constant")
        sd = float(field[liver].std()) or 1.0
        field /= sd
        mean = model.diffuse_liver_ratio * model.liver_kbq_per_ml
        mottled = mean * (1.0 + 0.35 * field)
        conc[liver] = np.maximum(mottled[liver], model.liver_kbq_per_ml)
    return conc
