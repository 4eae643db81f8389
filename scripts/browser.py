"""Headless Chromium for the browser tests and the README screenshots: Debian's browser, driven by Playwright.

`playwright install` downloads a browser, which machines without internet cannot do; Debian's
`chromium` package is used instead, with flags that keep it from reaching the network.
"""

from __future__ import annotations

import os

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def chromium_available() -> bool:
    return os.access(CHROMIUM, os.X_OK)


def launch_chromium(playwright):
    """A headless Chromium from a started `sync_playwright()` context."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
