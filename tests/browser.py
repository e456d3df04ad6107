"""Headless Chromium (Debian's chromium package) for looking at the HTML report in tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# No background traffic: the machines this runs on have no network, and Chromium's attempts to
# reach Google's hosts would otherwise be refused many at a time.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


def screenshot(page: Path, png: Path, *, width: int = 1400, height: int = 2400, timeout: float = 120) -> Path:
    """Render ``page`` (a local HTML file) in headless Chromium and save a PNG of its top."""
    profile = png.parent / f".{png.stem}-chromium-profile"
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
                    f"--screenshot={png}", page.resolve().as_uri()], check=True, capture_output=True,
                   timeout=timeout)
    shutil.rmtree(profile, ignore_errors=True)
    return png
