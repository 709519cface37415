# ruff: noqa: E501  (SVG markup reads best one element per line)
"""Server-side SVG charts for the dashboard: no chart library, no script, printable."""

from __future__ import annotations

from markupsafe import Markup, escape

COLOURS = {
    "settled": "#2e7d32",
    "branch": "#1565c0",
    "operator": "#ef6c00",
    "abandoned": "#8e24aa",
    "other": "#9e9e9e",
}


def bars(
    values: list[int], labels: list[str], title: str, width: int = 560, height: int = 180
) -> Markup:
    """A bar per value, labelled below every few bars, the count above each non-zero bar."""
    top = max(values, default=0) or 1
    n = max(len(values), 1)
    left, bottom, plot_h = 28, 20, height - 36
    step = (width - left) / n
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width}" y2="{height - bottom}" stroke="#999"/>',
        f'<text x="0" y="12" class="axis">{top}</text>',
    ]
    every = 1 if n <= 12 else 2 if n <= 24 else 5
    for i, (value, label) in enumerate(zip(values, labels, strict=True)):
        x = left + i * step
        h = plot_h * value / top
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{height - bottom - h:.1f}" width="{max(step - 2, 1):.1f}" '
            f'height="{h:.1f}" fill="#1565c0"><title>{escape(label)}: {value}</title></rect>'
        )
        if value:
            parts.append(
                f'<text x="{x + step / 2:.1f}" y="{height - bottom - h - 2:.1f}" class="value">{value}</text>'
            )
        if i % every == 0:
            parts.append(
                f'<text x="{x + step / 2:.1f}" y="{height - 5}" class="axis" text-anchor="middle">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def stacked(
    series: list[tuple[str, dict[str, int]]],
    groups: dict[str, str],
    title: str,
    width: int = 560,
    height: int = 200,
) -> Markup:
    """One stacked bar per period, one colour per outcome group, with a legend."""
    top = max((sum(v.values()) for _, v in series), default=0) or 1
    n = max(len(series), 1)
    left, bottom, legend_h = 28, 20, 18
    plot_h = height - bottom - legend_h - 14
    step = (width - left) / n
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f'<text x="0" y="{legend_h + 12}" class="axis">{top}</text>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width}" y2="{height - bottom}" stroke="#999"/>',
    ]
    x = left
    for key, name in groups.items():
        parts.append(
            f'<rect x="{x}" y="2" width="10" height="10" fill="{COLOURS.get(key, "#666")}"/>'
            f'<text x="{x + 14}" y="11" class="axis">{escape(name)}</text>'
        )
        x += 14 + 7 * len(name) + 14
    every = 1 if n <= 12 else 2 if n <= 24 else 5
    for i, (label, counts) in enumerate(series):
        x0 = left + i * step
        y = float(height - bottom)
        for key in groups:
            value = counts.get(key, 0)
            if not value:
                continue
            h = plot_h * value / top
            y -= h
            parts.append(
                f'<rect x="{x0 + 1:.1f}" y="{y:.1f}" width="{max(step - 2, 1):.1f}" height="{h:.1f}" '
                f'fill="{COLOURS.get(key, "#666")}"><title>{escape(label)} – '
                f"{escape(groups[key])}: {value}</title></rect>"
            )
        if i % every == 0:
            parts.append(
                f'<text x="{x0 + step / 2:.1f}" y="{height - 5}" class="axis" text-anchor="middle">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))
