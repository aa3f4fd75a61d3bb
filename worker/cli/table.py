"""The one table printer of the command line: columns padded to their widest cell.

``align`` gives each column ``"<"`` (left) or ``">"`` (right, for numbers); the last column is
never padded, so a long free-text column (a message) does not widen the others' lines.
"""

from __future__ import annotations

from collections.abc import Sequence


def render_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    align: str = "",
    rule: bool = False,
) -> list[str]:
    """The table's lines; ``rule`` adds a line of dashes under the headers."""
    cells = [[str(c) for c in headers], *([str(c) for c in row] for row in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    sides = align.ljust(len(headers), "<")
    lines = []
    for n, row in enumerate(cells):
        padded = [_pad(c, widths[i], sides[i], last=i == len(row) - 1) for i, c in enumerate(row)]
        lines.append("  ".join(padded).rstrip())
        if rule and n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def _pad(cell: str, width: int, side: str, *, last: bool) -> str:
    if side == ">":
        return cell.rjust(width)
    return cell if last else cell.ljust(width)
