"""The overview's charts as SVG drawn on the server: no script, no library, nothing to
load. Bars are stacked per point; each bar carries a <title> (the browser's tooltip) and
the chart an accessible name. Colours come from the stylesheet (classes `s0`, `s1`, ...),
so the page needs no inline style."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 600, 230
TOP, BOTTOM, LEFT = 16, 34, 100  # room for the scale and the first/last labels


@dataclass(frozen=True, slots=True)
class Layer:
    name: str
    values: Sequence[float]


def round_top(value: float) -> float:
    """A round top for the scale: 1, 2 or 5 times a power of ten."""
    if value <= 0:
        return 1.0
    magnitude = 1.0
    while magnitude * 10 <= value:
        magnitude *= 10
    while magnitude > value:
        magnitude /= 10
    for factor in (1, 2, 5, 10):
        if factor * magnitude >= value:
            return factor * magnitude
    return 10 * magnitude


def stacked_bars(
    title: str,
    labels: Sequence[str],
    layers: Sequence[Layer],
    fmt: Callable[[float], str] = lambda v: f"{v:g}",
) -> Markup:
    """`labels[i]` names point i (its start); each layer gives one value per point."""
    count = len(labels)
    totals = [sum(layer.values[i] for layer in layers) for i in range(count)]
    top = round_top(max(totals, default=0))
    plot_w, plot_h = WIDTH - LEFT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(count, 1)
    gap = min(2.0, slot * 0.2)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH}" y2="{TOP + plot_h}"/>',
        f'<line class="grid" x1="{LEFT}" y1="{TOP}" x2="{WIDTH}" y2="{TOP}"/>',
        f'<text class="scale" x="{LEFT - 6}" y="{TOP + 14}">{escape(fmt(top))}</text>',
        f'<text class="scale" x="{LEFT - 6}" y="{TOP + plot_h}">0</text>',
    ]
    for i in range(count):
        x = LEFT + i * slot + gap / 2
        base = float(TOP + plot_h)
        described = ", ".join(f"{layer.name} {fmt(layer.values[i])}" for layer in layers)
        parts.append(f"<g><title>{escape(labels[i])}: {escape(described)}</title>")
        for n, layer in enumerate(layers):
            value = layer.values[i]
            if value <= 0:
                continue
            h = plot_h * value / top
            base -= h
            parts.append(
                f'<rect class="s{n % 6}" x="{x:.2f}" y="{base:.2f}" '
                f'width="{max(slot - gap, 0.5):.2f}" height="{h:.2f}"/>'
            )
        parts.append("</g>")
    if labels:
        parts.append(f'<text class="label" x="{LEFT}" y="{HEIGHT - 6}">{escape(labels[0])}</text>')
        parts.append(
            f'<text class="label end" x="{WIDTH}" y="{HEIGHT - 6}">{escape(labels[-1])}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every value above is escaped or a number)
