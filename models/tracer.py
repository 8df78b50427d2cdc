"""Which tracer is this, and may octoscan score it?

Only somatostatin-receptor (SSTR) imaging is scored (issue 4): 111In-pentetreotide
(Octreoscan), 99mTc-EDDA/HYNIC-TOC (Tektrotyd) and other 99mTc SSTR peptides, 68Ga/64Cu
DOTA-peptides (DOTATATE, DOTATOC, DOTANOC) on PET and post-therapy 177Lu/90Y DOTATATE or
DOTATOC. A named non-SSTR agent (bone, lung, kidney, FDG, PSMA, MIBG ...) is refused with the
reason. A tracer that *could* be SSTR but is not named is scored only when the caller
asserts it (``assume_sstr``), and the result says so.

Choice for 111In without a pharmaceutical name: pentetreotide is by far the most common 111In
whole-body scan, but 111In also labels leukocytes (oxine), DTPA (cisternography) and
antibodies, whose images would be graded as nonsense. A name in the series description
("OCTREO", "SSTR", ...) counts as evidence; otherwise 111In is treated like any other
unnamed tracer: scored only with ``assume_sstr``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from octoscan.imaging.errors import UnsupportedAcquisitionError
from octoscan.imaging.types import AcquisitionInfo

# Normalised-name fragments (lower case, letters and digits only) -> canonical agent name.
# Checked before the non-SSTR list: "111In-DTPA-octreotide" is pentetreotide, not DTPA.
_SSTR_AGENTS: tuple[tuple[str, str], ...] = (
    ("pentetreotide", "pentetreotide"),
    ("octreoscan", "pentetreotide"),
    ("dtpaoctreotide", "pentetreotide"),
    ("tektrotyd", "EDDA/HYNIC-TOC"),
    ("hynictoc", "EDDA/HYNIC-TOC"),
    ("hynictyr3octreotide", "EDDA/HYNIC-TOC"),
    ("hynictate", "HYNIC-TATE"),
    ("depreotide", "depreotide"),
    ("dotatate", "DOTATATE"),
    ("oxodotreotide", "DOTATATE"),
    ("lutathera", "DOTATATE"),
    ("netspot", "DOTATATE"),
    ("detectnet", "DOTATATE"),
    ("dotatoc", "DOTATOC"),
    ("edotreotide", "DOTATOC"),
    ("somakit", "DOTATOC"),
    ("dotanoc", "DOTANOC"),
    ("satoreotide", "satoreotide"),
    ("jr11", "satoreotide"),
    ("octreotide", "octreotide"),
    ("somatostatin", "somatostatin analogue"),
    ("sstr", "somatostatin analogue"),
    ("octreo", "octreotide"),
)

# Fragments of named non-SSTR agents -> what the scan is.
_NON_SSTR_AGENTS: tuple[tuple[str, str], ...] = (
    ("medronate", "bone scan (MDP)"),
    ("mdp", "bone scan (MDP)"),
    ("hdp", "bone scan (HDP)"),
    ("oxidronate", "bone scan (HDP)"),
    ("dpd", "bone scan (DPD)"),
    ("diphosphono", "bone scan"),
    ("phosphonate", "bone scan"),
    ("sodiumfluoride", "bone PET (NaF)"),
    ("naf", "bone PET (NaF)"),
    ("macroaggregate", "lung perfusion (MAA)"),
    ("maa", "lung perfusion (MAA)"),
    ("dmsa", "renal cortical scan (DMSA)"),
    ("succimer", "renal cortical scan (DMSA)"),
    ("mag3", "renal scan (MAG3)"),
    ("mertiatide", "renal scan (MAG3)"),
    ("pentetate", "DTPA"),
    ("dtpa", "DTPA"),
    ("fdg", "FDG"),
    ("fluorodeoxyglucose", "FDG"),
    ("fludeoxyglucose", "FDG"),
    ("psma", "PSMA"),
    ("mibg", "MIBG"),
    ("iobenguane", "MIBG"),
    ("sestamibi", "sestamibi"),
    ("mibi", "sestamibi"),
    ("tetrofosmin", "tetrofosmin"),
    ("pertechnetate", "pertechnetate"),
    ("sulfurcolloid", "sulfur colloid"),
    ("colloid", "colloid"),
    ("exametazime", "HMPAO"),
    ("hmpao", "HMPAO"),
    ("bicisate", "ECD"),
    ("mebrofenin", "hepatobiliary (HIDA)"),
    ("disofenin", "hepatobiliary (HIDA)"),
    ("hida", "hepatobiliary (HIDA)"),
    ("oxine", "labelled leukocytes"),
    ("oxyquinoline", "labelled leukocytes"),
    ("leukocyte", "labelled leukocytes"),
    ("wbc", "labelled leukocytes"),
    ("ioflupane", "DaTSCAN"),
    ("datscan", "DaTSCAN"),
    ("capromab", "ProstaScint"),
    ("tilmanocept", "tilmanocept"),
    ("citrate", "citrate"),
    ("dopa", "F-DOPA"),
    ("choline", "choline"),
    ("fluciclovine", "fluciclovine"),
    ("fapi", "FAPI"),
    ("florbetapir", "amyloid PET"),
    ("florbetaben", "amyloid PET"),
    ("flutemetamol", "amyloid PET"),
    ("iodide", "iodide"),
    ("thallous", "thallium"),
)

# Radionuclides with at least one SSTR agent: unnamed tracers with these are "unknown".
_SSTR_CAPABLE: frozenset[str] = frozenset(
    {"In-111", "Tc-99m", "Ga-68", "Cu-64", "Lu-177", "Y-90", "F-18", "Sc-44", "Zr-89"}
)

_ELEMENT_NAMES: dict[str, str] = {
    "indium": "In",
    "technetium": "Tc",
    "gallium": "Ga",
    "copper": "Cu",
    "lutetium": "Lu",
    "yttrium": "Y",
    "fluorine": "F",
    "iodine": "I",
    "thallium": "Tl",
    "xenon": "Xe",
    "rubidium": "Rb",
    "nitrogen": "N",
    "oxygen": "O",
    "carbon": "C",
    "krypton": "Kr",
    "radium": "Ra",
    "samarium": "Sm",
    "strontium": "Sr",
    "chromium": "Cr",
    "scandium": "Sc",
    "zirconium": "Zr",
    "holmium": "Ho",
    "rhenium": "Re",
    "actinium": "Ac",
    "lead": "Pb",
}
_SYMBOLS: dict[str, str] = {s.lower(): s for s in _ELEMENT_NAMES.values()}


@dataclass(frozen=True)
class TracerCheck:
    """Outcome of the tracer check for a scored acquisition.

    ``tracer``: canonical name, e.g. "111In-pentetreotide", or "unknown (In-111)" when scored
    under ``assume_sstr``. ``assumed`` is True exactly then. ``evidence`` says which header
    field identified the tracer.
    """

    tracer: str
    radionuclide: str | None
    agent: str | None
    assumed: bool
    evidence: str
    warnings: tuple[str, ...] = ()


def normalise_radionuclide(text: str | None) -> str | None:
    """'In-111', '^111^Indium', 'Indium-111', '111In', '99mTc', 'Tc-99m' -> 'In-111' / 'Tc-99m'.

    Returns None when no element with a mass number is recognisable.
    """
    if not text:
        return None
    t = text.strip().lower()
    mass = re.search(r"(\d{1,3})\s*(m(?![a-z]))?", t)
    if mass is None:
        return None
    metastable = bool(mass.group(2))
    symbol = None
    for word in re.findall(r"[a-z]+", t):
        if word in _ELEMENT_NAMES:
            symbol = _ELEMENT_NAMES[word]
        elif word in _SYMBOLS:
            symbol = _SYMBOLS[word]
        elif word.startswith("m") and word[1:] in _SYMBOLS:  # "99mTc"
            symbol, metastable = _SYMBOLS[word[1:]], True
        if symbol is not None:
            break
    if symbol is None:
        return None
    return f"{symbol}-{mass.group(1)}{'m' if metastable else ''}"


def _normalise_name(text: str | None) -> str:
    return re.sub(r"[^a-z0-9]", "", (text or "").lower())


def _match(name: str, table: tuple[tuple[str, str], ...]) -> str | None:
    for fragment, label in table:
        if fragment in name:
            return label
    return None


def _canonical(radionuclide: str | None, agent: str) -> str:
    if radionuclide is None:
        return agent
    symbol, _, mass = radionuclide.partition("-")
    return f"{mass}{symbol}-{agent}"


def check_tracer(acq: AcquisitionInfo, *, assume_sstr: bool) -> TracerCheck:
    """Decide whether ``acq`` is SSTR imaging that octoscan may score.

    Identification order: the radiopharmaceutical name, then the series description. Raises
    :class:`UnsupportedAcquisitionError` with code ``not_sstr_tracer`` for a named non-SSTR
    agent or a radionuclide without any SSTR agent, and code ``unknown_tracer`` for an
    unnamed tracer when ``assume_sstr`` is False.
    """
    radionuclide = normalise_radionuclide(acq.radionuclide)
    pharm = _normalise_name(acq.radiopharmaceutical)
    desc = _normalise_name(acq.series_description)
    shown = acq.radiopharmaceutical or "(not given)"
    nuclide_text = radionuclide or acq.radionuclide or "unknown radionuclide"

    for evidence, name in (("radiopharmaceutical", pharm), ("series description", desc)):
        if not name:
            continue
        agent = _match(name, _SSTR_AGENTS)
        if agent is not None:
            warnings: tuple[str, ...] = ()
            if evidence == "series description":
                warnings = (
                    "tracer identified from the series description, not from the "
                    "radiopharmaceutical attribute",
                )
            return TracerCheck(
                tracer=_canonical(radionuclide, agent),
                radionuclide=radionuclide,
                agent=agent,
                assumed=False,
                evidence=evidence,
                warnings=warnings,
            )
        if evidence == "radiopharmaceutical":
            other = _match(name, _NON_SSTR_AGENTS)
            if other is not None:
                raise UnsupportedAcquisitionError(
                    f"radiopharmaceutical {shown!r} ({nuclide_text}) is a {other} agent, not a "
                    "somatostatin-receptor tracer; octoscan scores only SSTR imaging "
                    "(111In-pentetreotide, 99mTc-HYNIC-TOC, 68Ga/64Cu DOTA-peptides, "
                    "177Lu-DOTATATE/DOTATOC)",
                    code="not_sstr_tracer",
                )

    if radionuclide is not None and radionuclide not in _SSTR_CAPABLE:
        raise UnsupportedAcquisitionError(
            f"radionuclide {radionuclide} (radiopharmaceutical {shown!r}) has no "
            "somatostatin-receptor agent; expected one of "
            f"{', '.join(sorted(_SSTR_CAPABLE))}",
            code="not_sstr_tracer",
        )
    what = f"radiopharmaceutical {shown!r}, radionuclide {nuclide_text}"
    if not assume_sstr:
        hint = ""
        if radionuclide == "In-111":
            hint = (
                " (111In without a name is most often pentetreotide, but 111In also labels "
                "leukocytes, DTPA and antibodies)"
            )
        raise UnsupportedAcquisitionError(
            f"tracer not identified ({what}){hint}; rerun with --assume-sstr if this is a "
            "somatostatin-receptor scan",
            code="unknown_tracer",
        )
    return TracerCheck(
        tracer=f"unknown ({radionuclide})" if radionuclide else "unknown",
        radionuclide=radionuclide,
        agent=None,
        assumed=True,
        evidence="assume_sstr",
        warnings=(
            f"tracer not identified ({what}); scored as somatostatin-receptor imaging "
            "because --assume-sstr was given",
        ),
    )
