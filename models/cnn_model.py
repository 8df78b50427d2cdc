"""The planar segmentation CNN: a compact 2-D U-Net and its input normalisation.

Classes (per pixel of the planar scoring image, the conjugate-view geometric mean on the
anterior grid): 0 background/body, 1 liver, 2 spleen, 3 kidney, 4 bladder, 5 bowel,
6 lesion (:data:`CLASSES`).

Input normalisation (count images span orders of magnitude between studies, so nothing is
scaled by fixed constants):

1. the image (counts per pixel) is resampled to :data:`MODEL_SPACING_MM` (4.8 mm) square
   pixels, whatever the matrix and pixel spacing (area-weighted when shrinking: Gaussian
   pre-filter, then bilinear sampling of pixel centres);
2. its *body level* ``s`` is the median of the pixels above 5 % of the 99.5th percentile
   (the body, without air), a value near soft-tissue/liver level that scales with the count
   level, the counts per MBq and the pixel size alike;
3. the network sees ``log1p(image / s)``: organs and lesions 10-100 x brighter than soft
   tissue stay within a few units.

Network (:func:`build_unet`): three resolution levels of two 3x3 convolutions with batch
normalisation and ReLU (16, 32, 64 channels), max-pool down, transposed-convolution up, skip
connections, a 1x1 head with 7 outputs: about 0.12 M parameters. Fully convolutional: any
image whose sides are padded to a multiple of 4 pixels (:func:`pad_to_multiple`).

torch is imported only inside the functions that need it: this module, and the rest of
octoscan, import without torch.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import ndimage

from octoscan.imaging.errors import ModelUnavailableError

CLASSES: tuple[str, ...] = ("background", "liver", "spleen", "kidney", "bladder", "bowel", "lesion")
LESION_CLASS = CLASSES.index("lesion")
IGNORE_INDEX = 255  # label value left out of the loss (faint lesions the truth calls invisible)
MODEL_SPACING_MM = 4.8
CHANNELS: tuple[int, int, int] = (16, 32, 64)
PAD_MULTIPLE = 4
BODY_FRACTION = 0.05  # body pixels: above this fraction of the 99.5th percentile


def import_torch() -> Any:
    """Import torch or raise :class:`ModelUnavailableError` saying how to get it."""
    try:
        import torch
    except ImportError as exc:  # torch is optional: only the CNN needs it
        raise ModelUnavailableError(
            "the planar CNN needs torch, which is not importable "
            f"({exc}); install octoscan with torch (CPU build is enough) or run without --cnn",
            code="model_unavailable",
        ) from exc
    if torch is None:  # a module entry of None also means "not importable"
        raise ModelUnavailableError(
            "the planar CNN needs torch, which is not importable; install torch or run "
            "without --cnn",
            code="model_unavailable",
        )
    return torch


def resample(image: np.ndarray, out_shape: tuple[int, int], *, order: int = 1) -> np.ndarray:
    """Resample a (row, col) image so pixel *centres* map onto ``out_shape`` (same extent).

    Shrinking pre-filters with a Gaussian of sigma = factor / 2 (pixels) so that counts are
    averaged over the new pixel rather than picked.
    """
    arr = np.asarray(image, dtype=np.float32)
    factors = [arr.shape[k] / out_shape[k] for k in range(2)]
    if order > 0 and any(f > 1.0 for f in factors):
        sigma = [max(f, 1.0) / 2.0 if f > 1.0 else 0.0 for f in factors]
        arr = ndimage.gaussian_filter(arr, sigma, mode="nearest")
    coords = [(np.arange(out_shape[k]) + 0.5) * factors[k] - 0.5 for k in range(2)]
    grid = np.meshgrid(coords[0], coords[1], indexing="ij")
    return ndimage.map_coordinates(arr, grid, order=order, mode="nearest").astype(np.float32)


def model_shape(shape: tuple[int, int], spacing_mm: tuple[float, float]) -> tuple[int, int]:
    """Matrix size of an image of ``shape`` at ``spacing_mm`` once resampled to 4.8 mm."""
    return (
        max(PAD_MULTIPLE, round(shape[0] * spacing_mm[0] / MODEL_SPACING_MM)),
        max(PAD_MULTIPLE, round(shape[1] * spacing_mm[1] / MODEL_SPACING_MM)),
    )


def body_level(image: np.ndarray) -> float:
    """Median of the body pixels (above 5 % of the 99.5th percentile), counts per pixel."""
    arr = np.asarray(image, dtype=np.float64)
    top = float(np.percentile(arr, 99.5))
    if not math.isfinite(top) or top <= 0.0:
        return 1.0
    body = arr[arr > BODY_FRACTION * top]
    level = float(np.median(body)) if body.size else top
    return level if level > 0.0 else top


def normalise(image: np.ndarray, spacing_mm: tuple[float, float]) -> np.ndarray:
    """The network input of a planar image (counts per pixel, ``spacing_mm`` (row, col)).

    Returns float32 (rows', cols') at 4.8 mm: ``log1p(resampled / body_level)``.
    """
    arr = np.clip(np.nan_to_num(np.asarray(image, dtype=np.float32)), 0.0, None)
    small = resample(arr, model_shape(arr.shape, spacing_mm))
    return np.log1p(small / np.float32(body_level(small))).astype(np.float32)


def pad_to_multiple(arr: np.ndarray, multiple: int = PAD_MULTIPLE) -> tuple[np.ndarray, tuple]:
    """Zero-pad the last two axes up to a multiple; returns (padded, original (rows, cols))."""
    rows, cols = arr.shape[-2:]
    pr = (-rows) % multiple
    pc = (-cols) % multiple
    pad = [(0, 0)] * (arr.ndim - 2) + [(0, pr), (0, pc)]
    return np.pad(arr, pad), (rows, cols)


def build_unet(channels: tuple[int, int, int] = CHANNELS, n_classes: int = len(CLASSES)) -> Any:
    """The 2-D U-Net (a ``torch.nn.Module``; input (N, 1, H, W), output logits (N, 7, H, W))."""
    torch = import_torch()
    nn = torch.nn

    def block(cin: int, cout: int) -> Any:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    c1, c2, c3 = channels

    class PlanarUNet(nn.Module):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.enc1 = block(1, c1)
            self.enc2 = block(c1, c2)
            self.bottom = block(c2, c3)
            self.pool = nn.MaxPool2d(2)
            self.up2 = nn.ConvTranspose2d(c3, c2, 2, stride=2)
            self.dec2 = block(2 * c2, c2)
            self.up1 = nn.ConvTranspose2d(c2, c1, 2, stride=2)
            self.dec1 = block(2 * c1, c1)
            self.head = nn.Conv2d(c1, n_classes, 1)

        def forward(self, x: Any) -> Any:
            e1 = self.enc1(x)
            e2 = self.enc2(self.pool(e1))
            b = self.bottom(self.pool(e2))
            d2 = self.dec2(torch.cat([self.up2(b), e2], dim=1))
            d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
            return self.head(d1)

    return PlanarUNet()


def count_parameters(model: Any) -> int:
    """Number of trainable parameters of a torch module."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))
