"""The pure core's benchmark: the mapping store, routing and the splitter.

Run with ``.venv/bin/python -m benchmarks.core``; prints one table per part with the targets.
"""

from __future__ import annotations

import os

from benchmarks import bench_mapping, bench_router, bench_splitter
from benchmarks.table import format_table


def main() -> None:
    """Run every core benchmark and print the tables."""
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    for title, bench in (
        ("mapping store", bench_mapping),
        ("routing", bench_router),
        ("splitter", bench_splitter),
    ):
        print(f"## {title}\n")
        print(format_table(bench.run()))
        print()


if __name__ == "__main__":
    main()
