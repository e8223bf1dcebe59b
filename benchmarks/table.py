"""Plain-text tables for the benchmark scripts."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["format_table"]

HEADERS = ("what", "figure", "target")


def format_table(rows: Sequence[Sequence[str]]) -> str:
    """The rows as an aligned plain-text table (as many columns as the widest row)."""
    columns = max((len(r) for r in rows), default=2)
    header = HEADERS[:columns]
    padded = [tuple(r) + ("",) * (columns - len(r)) for r in [header, *rows]]
    widths = [max(len(r[i]) for r in padded) for i in range(columns)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in padded]
    rule = "-+-".join("-" * w for w in widths)
    return "\n".join([lines[0], rule, *lines[1:]])
