"""The one exception family of octoscan.

Every error a user can cause (a bad file, an inconsistent series, an acquisition we do not
score, a bad config value) derives from :class:`OctoscanError` and carries a stable,
machine-readable ``code`` that batches write to CSV/JSON. Anything else raised inside octoscan
is a bug and is reported with code ``internal``.
"""

from __future__ import annotations

from pathlib import Path


class OctoscanError(Exception):
    """Base class. ``code`` is stable across releases; ``path`` names the file if any."""

    default_code = "error"

    def __init__(self, message: str, *, code: str | None = None, path: str | Path | None = None):
        self.code = code or self.default_code
        self.path = str(path) if path is not None else None
        self.reason = message
        text = f"{self.path}: {message}" if self.path else message
        super().__init__(text)


class InvalidInputError(OctoscanError):
    """A file or value that cannot be used (unreadable, truncated, missing attribute ...)."""

    default_code = "invalid_input"


class InconsistentSeriesError(InvalidInputError):
    """Files of one series that do not stack into one image (gaps, tilt, mixed sizes ...)."""

    default_code = "inconsistent_series"


class UnsupportedAcquisitionError(OctoscanError):
    """A valid acquisition that octoscan does not score (raw TOMO projections, other tracers)."""

    default_code = "unsupported_acquisition"


class ConfigError(OctoscanError):
    """A configuration file or value outside its allowed range."""

    default_code = "config_error"


class ModelUnavailableError(OctoscanError):
    """The optional CNN cannot be used (torch missing, weights missing or corrupt)."""

    default_code = "model_unavailable"
