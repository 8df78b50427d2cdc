"""JPEG lossless (process 14) frames decoded by libjpeg-turbo, as a pydicom decoder plugin.

pydicom decodes JPEG lossless with pylibjpeg-libjpeg (about 12 ms per 512 x 512 CT slice
here). libjpeg-turbo 3, reached through ``imagecodecs.jpeg8_decode``, decodes the same
streams to the same values in about 2 ms. :func:`register` adds it to pydicom's decoders for
the two JPEG lossless transfer syntaxes under :data:`PLUGIN`; callers choose it with
``decoding_plugin=PLUGIN`` and fall back to pydicom's own plugins when it declines a frame
(any exception: more than one sample per pixel, a shape or precision other than the header's).
Without imagecodecs nothing is registered and pydicom's plugins decode as before.

pydicom's plugin contract: this module has ``is_available(uid)``, ``DECODER_DEPENDENCIES``
and a frame function taking (encoded frame, runner) and returning the frame's bytes in the
stored layout (little-endian, ``bits_allocated`` per sample); the runner then applies the
pixel representation (signed values) as for any plugin.
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Any

import numpy as np
from pydicom.uid import JPEGLossless, JPEGLosslessSV1

__all__ = [
    "DECODER_DEPENDENCIES",
    "PLUGIN",
    "decode_frame",
    "is_available",
    "preferred_plugin",
    "register",
]

PLUGIN = "octoscan-libjpeg-turbo"
SYNTAXES = (JPEGLossless, JPEGLosslessSV1)
DECODER_DEPENDENCIES = {uid: ("imagecodecs>=2024.1",) for uid in SYNTAXES}


def is_available(uid: str) -> bool:
    """Whether the plugin can decode ``uid`` here (imagecodecs importable)."""
    return uid in SYNTAXES and importlib.util.find_spec("imagecodecs") is not None


def decode_frame(src: bytes, runner: Any) -> bytes:
    """The decoded frame ``src`` as bytes of ``runner.bits_allocated`` per sample.

    Raises ValueError when the frame is not one this plugin vouches for (pydicom then tries
    its other plugins when no plugin was named).
    """
    from imagecodecs import jpeg8_decode

    if runner.samples_per_pixel != 1:
        raise ValueError("only single-sample (grey) frames")
    arr = np.asarray(jpeg8_decode(src))
    if arr.shape != (runner.rows, runner.columns):
        raise ValueError(
            f"decoded {arr.shape}, header {runner.rows} x {runner.columns}: not decoded here"
        )
    bits = runner.bits_allocated
    if bits == 16:
        return arr.astype("<u2", copy=False).tobytes()
    if bits == 8 and arr.dtype == np.uint8:
        return arr.tobytes()
    raise ValueError(f"{arr.dtype} samples for BitsAllocated {bits}: not decoded here")


@functools.cache
def register() -> bool:
    """Add :data:`PLUGIN` to pydicom's JPEG lossless decoders (once); whether it is there."""
    from pydicom.pixels import get_decoder

    for uid in SYNTAXES:
        decoder = get_decoder(uid)
        if PLUGIN not in decoder.available_plugins:
            if not is_available(uid):
                return False
            decoder.add_plugin(PLUGIN, (__name__, "decode_frame"))
    return True


def preferred_plugin(uid: str) -> str | None:
    """:data:`PLUGIN` when frames of transfer syntax ``uid`` should be tried with it first
    (a JPEG lossless syntax and the plugin registered), else None."""
    return PLUGIN if uid in SYNTAXES and register() else None
