"""Inference with the shipped planar CNN (CPU; weights from package data, no download).

:func:`load_model` reads ``octoscan.models`` / ``weights/planar_cnn.pt`` with
``torch.load(weights_only=True)`` after checking its SHA-256 against
``weights/planar_cnn.sha256``; :func:`predict` runs it on a planar scoring image (or a
:class:`~octoscan.models.types.PlanarScore`) and returns per-class probabilities and labels
on the image's own grid (the anterior grid for a PlanarScore).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from octoscan.imaging.errors import InvalidInputError, ModelUnavailableError
from octoscan.models.cnn_model import (
    CHANNELS,
    CLASSES,
    PAD_MULTIPLE,
    build_unet,
    import_torch,
    normalise,
    resample,
)
from octoscan.models.cnn_train import WEIGHTS_FORMAT, sha256_of
from octoscan.models.types import PlanarScore

WEIGHTS_NAME = "planar_cnn.pt"
CHECKSUM_NAME = "planar_cnn.sha256"


@dataclass(frozen=True)
class CnnPrediction:
    """The CNN's output on the input image's grid.

    ``probabilities``: float32 (7, rows, cols), class order :data:`CLASSES`; ``labels``:
    uint8 (rows, cols) argmax; ``spacing_mm`` (row, col) of that grid; ``seconds``: CPU time
    of the prediction (normalisation, network, resampling back).
    """

    probabilities: np.ndarray = field(repr=False, compare=False)
    labels: np.ndarray = field(repr=False, compare=False)
    spacing_mm: tuple[float, float]
    classes: tuple[str, ...] = CLASSES
    weights_sha256: str = ""
    seconds: float = 0.0

    def mask(self, name: str) -> np.ndarray:
        """Boolean mask of class ``name`` (argmax)."""
        return self.labels == CLASSES.index(name)


@dataclass(frozen=True)
class LoadedModel:
    """A loaded network (torch module in eval mode) with its weights' SHA-256."""

    module: Any = field(repr=False, compare=False)
    sha256: str
    path: str


def default_weights_path() -> Path:
    """Path of the shipped weights inside the installed package."""
    return Path(str(resources.files("octoscan.models").joinpath("weights", WEIGHTS_NAME)))


def _expected_digest(weights: Path, checksum: Path) -> str:
    if not checksum.is_file():
        raise ModelUnavailableError(
            f"checksum file {checksum} missing; expected the SHA-256 of {weights.name} beside it",
            code="model_unavailable",
            path=checksum,
        )
    text = checksum.read_text(encoding="utf-8").split()
    if not text or len(text[0]) != 64:
        raise ModelUnavailableError(
            f"checksum file {checksum} holds {text[:1]!r}; expected a 64-digit hex SHA-256",
            code="model_unavailable",
            path=checksum,
        )
    return text[0].lower()


def load_model(weights: str | Path | None = None, *, threads: int | None = None) -> LoadedModel:
    """Load the planar CNN (default: the shipped weights) after a SHA-256 check.

    The checksum is read from ``<weights stem>.sha256`` beside the file. Raises
    :class:`ModelUnavailableError` when torch is missing, the weights or checksum are
    missing, the checksum does not match, or the file is not octoscan planar-CNN weights.
    """
    path = Path(weights) if weights is not None else default_weights_path()
    if not path.is_file():
        raise ModelUnavailableError(
            f"CNN weights {path} not found; expected the shipped {WEIGHTS_NAME} or a file "
            "written by `octoscan train`",
            code="model_unavailable",
            path=path,
        )
    expected = _expected_digest(path, path.with_suffix(".sha256"))
    actual = sha256_of(path)
    if not hmac.compare_digest(actual, expected):
        raise ModelUnavailableError(
            f"CNN weights {path} have SHA-256 {actual}; expected {expected} "
            f"(from {path.with_suffix('.sha256').name}): refusing to load them",
            code="model_unavailable",
            path=path,
        )
    torch = import_torch()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling failure means unusable weights
        raise ModelUnavailableError(
            f"CNN weights {path} could not be read ({type(exc).__name__}: {exc})",
            code="model_unavailable",
            path=path,
        ) from exc
    meta = blob.get("meta", {}) if isinstance(blob, dict) else {}
    if meta.get("format") != WEIGHTS_FORMAT or tuple(meta.get("classes", ())) != CLASSES:
        raise ModelUnavailableError(
            f"CNN weights {path} have format {meta.get('format')!r} and classes "
            f"{meta.get('classes')!r}; expected {WEIGHTS_FORMAT!r} with classes {list(CLASSES)}",
            code="model_unavailable",
            path=path,
        )
    module = build_unet(tuple(meta.get("channels", CHANNELS)))
    module.load_state_dict(blob["state_dict"])
    module.eval()
    return LoadedModel(module=module, sha256=actual, path=str(path))


def predict(
    score_or_image: PlanarScore | np.ndarray,
    spacing_mm: tuple[float, float] | None = None,
    *,
    model: LoadedModel | None = None,
) -> CnnPrediction:
    """Per-class probabilities and labels of a planar scoring image on its own grid.

    ``score_or_image``: a PlanarScore (its ``scoring_image`` and ``pixel_spacing_mm`` are
    used) or a (rows, cols) count image with ``spacing_mm`` (row, col) in mm. ``model``:
    from :func:`load_model` (loaded on each call when None: load once for many studies).
    """
    import time

    t0 = time.perf_counter()
    if isinstance(score_or_image, PlanarScore):
        image = np.asarray(score_or_image.scoring_image, dtype=np.float32)
        spacing = spacing_mm or score_or_image.pixel_spacing_mm
    else:
        image = np.asarray(score_or_image, dtype=np.float32)
        if spacing_mm is None:
            raise InvalidInputError(
                "predict() on an array needs spacing_mm (row, col) in mm; got None",
                code="invalid_option",
            )
        spacing = spacing_mm
    if image.ndim != 2 or min(image.shape) < 2:
        raise InvalidInputError(
            f"planar image shape {image.shape}; expected (rows, cols) with both >= 2",
            code="invalid_image",
        )
    if not all(s > 0 for s in spacing):
        raise InvalidInputError(
            f"pixel spacing {spacing} mm; expected two positive values", code="invalid_image"
        )
    loaded = model or load_model()
    torch = import_torch()
    x = normalise(image, (float(spacing[0]), float(spacing[1])))
    rows, cols = x.shape
    pr, pc = (-rows) % PAD_MULTIPLE, (-cols) % PAD_MULTIPLE
    xp = np.ascontiguousarray(np.pad(x, ((0, pr), (0, pc)))[None, None])
    with torch.no_grad():
        prob = torch.softmax(loaded.module(torch.from_numpy(xp)), dim=1)[0, :, :rows, :cols]
    small = prob.numpy()
    full = np.stack([resample(p, image.shape) for p in small])
    full = np.clip(full, 0.0, 1.0)
    full /= np.maximum(full.sum(axis=0, keepdims=True), 1e-6)
    return CnnPrediction(
        probabilities=full.astype(np.float32),
        labels=full.argmax(axis=0).astype(np.uint8),
        spacing_mm=(float(spacing[0]), float(spacing[1])),
        weights_sha256=loaded.sha256,
        seconds=round(time.perf_counter() - t0, 4),
    )
