"""What a chart test reads: the figures a chart function drew, and where their parts landed on the page."""

from __future__ import annotations

import re

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.transforms import Bbox

from services.lab.report import charts as report

# A file name a reader can type and a web page can link: no spaces, arrows or other punctuation.
PLAIN_FILE_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
UNITS = {"ms", "s", "%", "core", "cores"}


@pytest.fixture
def drawn(monkeypatch) -> list:
    """Every figure the engine's ``report.save`` wrote during the test, kept open for reading."""
    figures: list = []
    original = report.save

    def keep(fig, path):
        figures.append(fig)
        return original(fig, path)

    monkeypatch.setattr(report, "save", keep)
    return figures


def extent(artist) -> Bbox:
    """The artist's box on the rendered page, in pixels."""
    figure = artist.figure
    if not isinstance(figure.canvas, FigureCanvasAgg):  # a closed figure keeps a canvas that cannot draw
        FigureCanvasAgg(figure)
    return artist.get_window_extent(figure.canvas.get_renderer())


def overlap(a: Bbox, b: Bbox) -> bool:
    """True when the boxes share area (touching edges do not count)."""
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def has_unit(label: str) -> bool:
    """A label that says its unit in brackets: ``latency (ms)``, ``checkouts (%)``, ``achieved (messages/s)``."""
    words = [w for group in re.findall(r"\(([^()]*)\)", label) for w in re.split(r"[,\s]+", group)]
    return any(w in UNITS or (w.endswith("/s") and len(w) > 2) for w in words)


def crosses(line, box: Bbox, samples: int = 50) -> bool:
    """True when the drawn line (its markers' points or any stretch between them) passes through the box."""
    extent(line)  # a canvas that can draw
    points = line.get_transform().transform(line.get_xydata())
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        for i in range(samples + 1):
            x, y = x0 + (x1 - x0) * i / samples, y0 + (y1 - y0) * i / samples
            if box.x0 <= x <= box.x1 and box.y0 <= y <= box.y1:
                return True
    return False
