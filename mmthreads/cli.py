"""The ``mmthreads`` command line: a testable ``main(argv) -> int``."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from mmthreads.errors import MmthreadsError

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

    harness = sub.add_parser(
        "harness", help="run the Mattermost emulator (and the OpenCode stand-in) standalone"
    )
    harness.add_argument("--port", type=int, default=0, help="emulator port (default: a free one)")
    harness.add_argument("--opencode", action="store_true", help="also run the OpenCode stand-in")
    harness.add_argument(
        "--opencode-port", type=int, default=0, help="stand-in port (default: a free one)"
    )
    harness.add_argument(
        "--directory", default=".", help="the stand-in's default project directory"
    )
    harness.add_argument("--plan", type=Path, help="a fault plan (TOML) for both servers")
    harness.add_argument("--bot", default="mmthreads", help="bot username (default: mmthreads)")
    harness.add_argument("--user", default="alice", help="human username (default: alice)")
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


def _harness(args: argparse.Namespace) -> int:
    import trio

    from mmthreads.errors import ConfigError
    from mmthreads.harness.faults import FaultPlan
    from mmthreads.harness.standalone import HarnessOptions, run_harness

    try:
        plan = FaultPlan.load(args.plan) if args.plan else None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the fault plan {args.plan}: {exc}") from exc
    options = HarnessOptions(
        port=args.port,
        opencode=args.opencode,
        opencode_port=args.opencode_port,
        directory=str(Path(args.directory).resolve()),
        plan=plan,
        bot_name=args.bot,
        user_name=args.user,
    )

    async def until_signalled() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(run_harness, options)
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break

    trio.run(until_signalled)
    print("harness stopped", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    args = _build_parser().parse_args(argv)
    if args.command == "statechart":
        return _statechart(args)
    if args.command == "demo":
        return _demo(args)
    if args.command == "harness":
        try:
            return _harness(args)
        except MmthreadsError as exc:
            print(f"mmthreads: {exc}", file=sys.stderr)
            return 2
    raise AssertionError(args.command)  # pragma: no cover - argparse enforces the choices
