"""Input folders for the batch tests: small planar phantom studies plus broken files.

Generated once per test session (``pytest``'s session base temp folder) and shared by the
batch test modules, which never write into them (they assert so by hashing every file).
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

from octoscan.imaging.phantom.study import StudySpec, generate_study

STUDY_SEEDS: tuple[int, ...] = (21, 22, 23, 24)
SINGLE_VIEW_SEED = 25
PSEUDONYM_KEY = "octoscan-batch-tests"


@dataclass(frozen=True)
class BatchInput:
    """A folder of studies: ``n_studies`` planar studies (one with the anterior view only),
    a truncated DICOM file, a non-DICOM ``.dcm`` file, and maybe a study that fails."""

    root: Path
    study_uids: tuple[str, ...]
    single_view_uid: str
    truncated: Path
    not_dicom: Path
    failing_uid: str | None = None

    @property
    def n_studies(self) -> int:
        return len(self.study_uids) + (1 if self.failing_uid else 0)


def _study_uid(folder: Path) -> str:
    first = next(p for p in sorted(folder.rglob("*.dcm")))
    return str(pydicom.dcmread(first, stop_before_pixels=True).StudyInstanceUID)


def _write(root: Path, seeds: tuple[int, ...]) -> None:
    for seed in seeds:
        generate_study(StudySpec(seed=seed, kind="planar"), root / f"study_{seed}")
    generate_study(
        StudySpec(seed=SINGLE_VIEW_SEED, kind="planar", variants=("anterior-only",)),
        root / "single_view",
    )
    source = next((root / f"study_{seeds[0]}").rglob("*.dcm"))
    broken = root / "broken"
    broken.mkdir()
    (broken / "truncated.dcm").write_bytes(source.read_bytes()[:300])
    (broken / "not_dicom.dcm").write_bytes(b"this file is not DICOM at all\n" * 20)


def write_tomo_only_study(source: Path, target: Path, *, seed: int) -> str:
    """Copy an NM file as a new study whose only series is raw TOMO projections (a study
    octoscan cannot score: code ``no_usable_series``). Returns its StudyInstanceUID."""
    ds = pydicom.dcmread(source)
    entropy = [f"octoscan-batch-tests-tomo-{seed}"]
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[*entropy, "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[*entropy, "series"])
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[*entropy, "instance"])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    image_type = list(ds.ImageType)
    image_type[2] = "TOMO"
    ds.ImageType = image_type
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(target, enforce_file_format=True)
    return str(ds.StudyInstanceUID)


def describe_batch_input(root: Path, *, seeds: tuple[int, ...] = STUDY_SEEDS) -> BatchInput:
    """The :class:`BatchInput` of a folder written by :func:`build_batch_input`."""
    failing = root / "tomo_only" / "TOMO0001.dcm"
    single = _study_uid(root / "single_view")
    return BatchInput(
        root=root,
        study_uids=(*(_study_uid(root / f"study_{seed}") for seed in seeds), single),
        single_view_uid=single,
        truncated=root / "broken" / "truncated.dcm",
        not_dicom=root / "broken" / "not_dicom.dcm",
        failing_uid=(
            str(pydicom.dcmread(failing, stop_before_pixels=True).StudyInstanceUID)
            if failing.is_file()
            else None
        ),
    )


def build_batch_input(
    root: Path, *, seeds: tuple[int, ...] = STUDY_SEEDS, with_failing: bool = False
) -> BatchInput:
    """Write the input folder under ``root`` (which must not exist)."""
    _write(root, seeds)
    if with_failing:
        source = next((root / f"study_{seeds[0]}").rglob("*.dcm"))
        write_tomo_only_study(source, root / "tomo_only" / "TOMO0001.dcm", seed=seeds[0])
    return describe_batch_input(root, seeds=seeds)


def cached_batch_input(
    base: Path, name: str, *, seeds: tuple[int, ...] = STUDY_SEEDS, with_failing: bool = False
) -> BatchInput:
    """:func:`build_batch_input` under ``base/name``, written once per session."""
    root = base / name
    marker = base / f"{name}.complete"
    if not marker.is_file():
        if root.exists():
            shutil.rmtree(root)
        build_batch_input(root, seeds=seeds, with_failing=with_failing)
        marker.write_text("complete\n")
    return describe_batch_input(root, seeds=seeds)


def hash_tree(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` (relative POSIX path -> hex digest)."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
