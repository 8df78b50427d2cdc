"""Krenning grade from uptake ratios.

Kwekkeboom & Krenning, Semin Nucl Med 2002;32:84: a lesion is compared with normal liver and
spleen (or kidneys when the spleen is unusable):

    0 none; 1 much lower than liver; 2 slightly lower than or equal to liver;
    3 greater than liver; 4 greater than spleen (or kidneys).

The numeric thresholds that turn "much lower" and "greater" into ratios are a configuration
choice (``configs/*.toml``, section ``[krenning]``), never constants in code. The field
metadata ``range`` gives the values the config loader accepts.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class KrenningThresholds:
    """Ratio thresholds (lesion uptake / reference mean, dimensionless).

    grade 1: ratio_liver < ``grade2_min_ratio_liver``;
    grade 2: ``grade2_min_ratio_liver`` <= ratio_liver <= ``grade3_min_ratio_liver``;
    grade 3: ratio_liver > ``grade3_min_ratio_liver``;
    grade 4: ratio_spleen > ``grade4_min_ratio_spleen`` (spleen, or kidney when no spleen).
    """

    grade2_min_ratio_liver: float = field(default=0.5, metadata={"range": (0.05, 2.0)})
    grade3_min_ratio_liver: float = field(default=1.0, metadata={"range": (0.1, 5.0)})
    grade4_min_ratio_spleen: float = field(default=1.0, metadata={"range": (0.1, 5.0)})


def grade_from_ratios(
    ratio_liver: float | None,
    ratio_spleen: float | None,
    thresholds: KrenningThresholds,
    *,
    visible: bool = True,
) -> int:
    """Krenning grade 0-4 from point estimates of the ratios.

    ``ratio_spleen`` may be None (no usable spleen or kidney reference): grade 4 is then not
    assigned and the caller must say so. ``visible=False`` gives grade 0.
    """
    if not visible or ratio_liver is None:
        return 0
    if ratio_spleen is not None and ratio_spleen > thresholds.grade4_min_ratio_spleen:
        return 4
    if ratio_liver > thresholds.grade3_min_ratio_liver:
        return 3
    if ratio_liver >= thresholds.grade2_min_ratio_liver:
        return 2
    return 1
