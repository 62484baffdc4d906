"""The console's server-drawn charts: a round scale, stacked bars in proportion, text
escaped."""

from __future__ import annotations

import re

import pytest

from orderhub.console.charts import BOTTOM, HEIGHT, TOP, Layer, round_top, stacked_bars


@pytest.mark.parametrize(
    ("value", "top"), [(0, 1), (1, 1), (3, 5), (7, 10), (12, 20), (109.97, 200), (5000, 5000)]
)
def test_the_scale_tops_out_at_a_round_number(value: float, top: float) -> None:
    assert round_top(value) == top


def test_bars_stack_in_proportion_to_the_scale() -> None:
    svg = str(stacked_bars("Orders", ["a", "b"], [Layer("x", [2, 0]), Layer("y", [3, 0])]))
    heights = [float(h) for h in re.findall(r'<rect class="s\d" [^>]*height="([\d.]+)"', svg)]
    plot = HEIGHT - TOP - BOTTOM
    assert heights == [pytest.approx(plot * 2 / 5), pytest.approx(plot * 3 / 5)]  # top 5
    assert "<title>b: x 0, y 0</title>" in svg  # an empty point has its tooltip, no bar


def test_labels_and_titles_are_escaped() -> None:
    svg = str(stacked_bars("<b>", ["<script>"], [Layer("<i>", [1])]))
    assert "<script>" not in svg and "<b>" not in svg and "<i>" not in svg
    assert "&lt;script&gt;" in svg
