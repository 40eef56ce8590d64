"""Charts drawn on the server as inline SVG: no script, no external asset, CSP-friendly.

Only presentation attributes are used (no ``style=``), so the admin CSP's ``style-src 'self'``
holds; colours come from ``static/admin.css`` (``.chart .bar`` ...).
"""

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH = 640
HEIGHT = 220
MARGIN_TOP = 16
MARGIN_BOTTOM = 40
MARGIN_LEFT = 40


def _nice_max(value: int) -> int:
    # Round the axis up to 1, 2, 4 or 10 times a power of ten: the middle gridline's label
    # (half of it) is then a whole number too.
    if value <= 4:
        return 4
    magnitude = 10 ** (len(str(value)) - 1)
    for step in (1, 2, 4, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _gridlines(top: int, plot_height: int) -> list[str]:
    parts = []
    for fraction in (0, 0.5, 1):
        y = MARGIN_TOP + plot_height * (1 - fraction)
        label = int(top * fraction)
        parts.append(
            f'<line class="gridline" x1="{MARGIN_LEFT}" x2="{WIDTH}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{MARGIN_LEFT - 6}" y="{y + 4:.1f}" '
            f'text-anchor="end">{label}</text>'
        )
    return parts


def bar_chart(points: Sequence[tuple[str, int]], *, title: str) -> Markup:
    """Return an SVG bar chart of ``points`` as safe markup for a Jinja template.

    Args:
        points: (label, value) pairs in display order; values are counts (>= 0).
        title: the chart's accessible name (SVG ``<title>`` and ``aria-label``).

    Returns:
        ``<svg>`` markup with a ``viewBox``, so CSS can scale it to the page width.
    """
    plot_height = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    top = _nice_max(max((value for _, value in points), default=0))
    slot = (WIDTH - MARGIN_LEFT) / max(len(points), 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        *_gridlines(top, plot_height),
    ]
    for index, (label, value) in enumerate(points):
        bar_height = plot_height * value / top
        x = MARGIN_LEFT + index * slot + slot * 0.15
        y = MARGIN_TOP + plot_height - bar_height
        center = x + slot * 0.35
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{bar_height:.1f}"><title>{escape(label)}: {value}</title></rect>'
            f'<text class="axis" x="{center:.1f}" y="{HEIGHT - MARGIN_BOTTOM + 16}" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
        if value:
            parts.append(
                f'<text class="value" x="{center:.1f}" y="{y - 3:.1f}" '
                f'text-anchor="middle">{value}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))
