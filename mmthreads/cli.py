"""The ``mmthreads`` command line: a testable ``main(argv) -> int``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmthreads",
        description="Drive many OpenCode sessions from Mattermost: one DM thread per session.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    chart = sub.add_parser(
        "statechart", help="write the state diagrams in statecharts/ from the state machines"
    )
    chart.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 when the committed diagrams are stale",
    )
    chart.add_argument(
        "--dir",
        type=Path,
        default=Path("statecharts"),
        help="folder of the diagrams (default: statecharts)",
    )

    sub.add_parser(
        "demo", help="run the demo: bundled Mattermost emulator, OpenCode stand-in, bridge"
    )
    return parser


def _statechart(args: argparse.Namespace) -> int:
    from mmthreads.diagrams import check_statecharts, write_statecharts

    if args.check:
        stale = check_statecharts(args.dir)
        for name in stale:
            print(f"stale: {args.dir / name} (run: mmthreads statechart)", file=sys.stderr)
        if stale:
            return 1
        print(f"statecharts in {args.dir} are up to date")
        return 0
    for path in write_statecharts(args.dir):
        print(f"wrote {path}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from mmthreads.demo import run_demo

    return run_demo()


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    args = _build_parser().parse_args(argv)
    if args.command == "statechart":
        return _statechart(args)
    if args.command == "demo":
        return _demo(args)
    raise AssertionError(args.command)  # pragma: no cover - argparse enforces the choices
