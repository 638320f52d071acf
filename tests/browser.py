"""Opening the HTML report in Debian's headless chromium (driven by Playwright, which
downloads no browser of its own): its console errors, and what each chart drew."""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Per chart: its title, how many traces hold data, and how many marks (bar, point, line,
# Sankey node and link) it drew on the page.
CHARTS_JS = """
() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => ({
  title: (gd.layout.title && (gd.layout.title.text || gd.layout.title)) || '',
  traces_with_data: gd.data.filter(t =>
    ['x', 'y', 'values'].some(k => t[k] && t[k].length > 0) ||
    (t.link && t.link.value && t.link.value.length > 0)).length,
  marks: gd.querySelectorAll(
    '.cartesianlayer .point, .cartesianlayer .js-line, .sankey-node, .sankey-link').length,
}))
"""


@dataclass(frozen=True)
class Rendered:
    errors: list[str]
    charts: list[dict[str, Any]]
    sections: list[str]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium is not installed (`.ci/run` installs Debian's chromium package)")
    return found


def render_in_chromium(report: Path, screenshot: Path) -> Rendered:
    """Open ``report`` with no network, wait for every chart, save a full-page screenshot."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            # Anything but the file itself would be the network: refuse it.
            page.route("http*://**", lambda route: route.abort())
            page.goto(report.resolve().as_uri())
            # Plotly draws after the page loads: wait (with a deadline) until every chart
            # drew marks; one that never does shows as such in what is returned.
            with contextlib.suppress(PlaywrightTimeout):
                page.wait_for_function(f"({CHARTS_JS})().every(c => c.marks > 0)", timeout=30_000)
            charts = page.evaluate(CHARTS_JS)
            sections = page.eval_on_selector_all("h2", "hs => hs.map(h => h.textContent)")
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return Rendered(errors, charts, sections)
