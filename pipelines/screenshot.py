"""Open a report page in headless Chromium (Playwright) and save a PNG screenshot.

Used by the browser test and to make the README's screenshot::

    python -m octoscan.pipelines.screenshot DIR/<study key>/report.html docs/report-screenshot.png

Chromium is the system one (Debian packages ``chromium`` and ``chromium-driver``, at
``/usr/bin/chromium``); Playwright only drives it (never ``playwright install``). Each run uses
a fresh temporary profile, and every request that is not a local file is refused, so a page
that tried to reach the network would fail the run instead of loading something.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from octoscan.pipelines.atomic import write_bytes_atomic

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Route

__all__ = [
    "CHROMIUM_ARGS",
    "CHROMIUM_PATH",
    "DEFAULT_VIEWPORT_PX",
    "BrowserUnavailableError",
    "chromium_available",
    "main",
    "open_browser",
    "page_url",
    "save_screenshot",
]

CHROMIUM_PATH = Path("/usr/bin/chromium")
CHROMIUM_ARGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
DEFAULT_VIEWPORT_PX = (1280, 900)  # (width, height)
_LOCAL_SCHEMES = ("file:", "data:", "about:")


class BrowserUnavailableError(RuntimeError):
    """Chromium or Playwright is not installed."""


def chromium_available(executable: str | Path = CHROMIUM_PATH) -> bool:
    """Whether ``executable`` exists and Playwright imports."""
    if not (Path(executable).is_file() or shutil.which(str(executable))):
        return False
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


def page_url(page: str | Path) -> str:
    """The file:// URL of a local page (an existing file)."""
    path = Path(page).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"page {path} does not exist")
    return path.as_uri()


@contextmanager
def open_browser(
    *,
    executable: str | Path = CHROMIUM_PATH,
    viewport_px: tuple[int, int] = DEFAULT_VIEWPORT_PX,
    blocked: list[str] | None = None,
) -> Iterator[BrowserContext]:
    """A headless Chromium context on a fresh temporary profile (removed afterwards).

    Requests for anything but local files are aborted; their URLs are appended to
    ``blocked`` when a list is given.
    """
    if not chromium_available(executable):
        raise BrowserUnavailableError(
            f"headless Chromium unavailable: need {executable} (apt-get install chromium "
            "chromium-driver) and the playwright package"
        )
    from playwright.sync_api import sync_playwright

    def refuse_remote(route: Route) -> None:
        url = route.request.url
        if url.startswith(_LOCAL_SCHEMES):
            route.continue_()
            return
        if blocked is not None:
            blocked.append(url)
        route.abort()

    width, height = viewport_px
    with (
        tempfile.TemporaryDirectory(prefix="octoscan-chromium-") as profile,
        sync_playwright() as pw,
    ):
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=str(executable),
            headless=True,
            args=list(CHROMIUM_ARGS),
            viewport={"width": width, "height": height},
            device_scale_factor=1,
            locale="en-GB",
            timezone_id="UTC",
        )
        try:
            context.route("**/*", refuse_remote)
            yield context
        finally:
            context.close()


def save_screenshot(
    page: str | Path,
    png_path: str | Path,
    *,
    viewport_px: tuple[int, int] = DEFAULT_VIEWPORT_PX,
    full_page: bool = False,
    executable: str | Path = CHROMIUM_PATH,
) -> Path:
    """Open ``page`` (a local HTML file) and write a PNG screenshot of the viewport
    (``full_page``: the whole page) to ``png_path`` atomically. Waits until every image has
    loaded. Raises RuntimeError when the page tried to reach the network or an image failed
    to load."""
    blocked: list[str] = []
    with open_browser(executable=executable, viewport_px=viewport_px, blocked=blocked) as ctx:
        tab = ctx.new_page()
        tab.goto(page_url(page), wait_until="load")
        broken = tab.evaluate(
            "() => Array.from(document.images)"
            ".filter(img => !img.complete || img.naturalWidth === 0)"
            ".map(img => img.getAttribute('src'))"
        )
        data = tab.screenshot(full_page=full_page, type="png")
    if blocked:
        raise RuntimeError(f"page {page} requested remote resources: {blocked}")
    if broken:
        raise RuntimeError(f"page {page}: images not loaded: {broken}")
    return write_bytes_atomic(png_path, data)


def main(argv: list[str] | None = None) -> int:
    """``python -m octoscan.pipelines.screenshot PAGE OUT.png [--width W --height H]``."""
    parser = argparse.ArgumentParser(
        prog="python -m octoscan.pipelines.screenshot",
        description="Save a PNG screenshot of a local HTML page with headless Chromium.",
    )
    parser.add_argument("page", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--width", type=int, default=DEFAULT_VIEWPORT_PX[0])
    parser.add_argument("--height", type=int, default=DEFAULT_VIEWPORT_PX[1])
    parser.add_argument("--full-page", action="store_true")
    args = parser.parse_args(argv)
    if args.width < 200 or args.height < 200:
        parser.error(f"viewport {args.width}x{args.height}; expected at least 200x200")
    try:
        path = save_screenshot(
            args.page, args.png, viewport_px=(args.width, args.height), full_page=args.full_page
        )
    except (BrowserUnavailableError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}")
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
