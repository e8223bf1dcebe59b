"""The ``mmthreads`` command line: a testable ``main(argv) -> int``."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mmthreads.errors import ConfigError, MmthreadsError

if TYPE_CHECKING:
    from mmthreads.settings import Settings

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

    demo = sub.add_parser(
        "demo", help="run the demo: bundled Mattermost emulator, OpenCode stand-in, bridge"
    )
    demo.add_argument(
        "--keep-running",
        action="store_true",
        help="after the printout keep everything up (for a client to connect) until Ctrl-C",
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
    run = sub.add_parser("run", help="run the bridge (Mattermost <-> OpenCode)")
    _add_settings_options(run)
    check = sub.add_parser(
        "check-config", help="check the settings: bot login, owners, DMs, OpenCode servers"
    )
    _add_settings_options(check)
    return parser


def _add_settings_options(parser: argparse.ArgumentParser) -> None:
    # Each option is one name of mmthreads.settings.FLAGS; see docs/reference/configuration.md.
    parser.add_argument("--config", type=Path, help="a TOML settings file")
    parser.add_argument("--mattermost-url", help="the Mattermost server's address")
    parser.add_argument(
        "--owner-user-id", action="append", help="user id allowed to drive sessions (repeatable)"
    )
    parser.add_argument(
        "--owner-username", action="append", help="username allowed to drive sessions (repeatable)"
    )
    parser.add_argument(
        "--opencode-url", action="append", help="an `opencode serve` to follow (repeatable)"
    )
    parser.add_argument("--opencode-username", help="OpenCode basic-auth user")
    parser.add_argument("--mapping-file", help="the thread/session mapping file")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR or CRITICAL")
    parser.add_argument("--edit-interval", type=float, help="seconds between edits of an answer")
    parser.add_argument("--queue-limit", type=int, help="prompts queued per disconnected thread")
    parser.add_argument(
        "--adoption-window", type=float, help="seconds within which old sessions are adopted"
    )
    # Secrets are refused as flags (command lines are public); accepted here only so that the
    # settings loader can say where to put them instead.
    parser.add_argument("--mattermost-token", help=argparse.SUPPRESS)
    parser.add_argument("--opencode-password", help=argparse.SUPPRESS)


_SETTINGS_FLAGS = (
    "mattermost_url",
    "owner_user_id",
    "owner_username",
    "opencode_url",
    "opencode_username",
    "mapping_file",
    "log_level",
    "edit_interval",
    "queue_limit",
    "adoption_window",
    "mattermost_token",
    "opencode_password",
)


def _load(args: argparse.Namespace) -> Settings:
    import os

    from mmthreads.settings import load_settings

    values = {name: getattr(args, name) for name in _SETTINGS_FLAGS}
    flags = {name: value for name, value in values.items() if value is not None}
    return load_settings(env=os.environ, config_path=args.config, flags=flags)


def _run(args: argparse.Namespace) -> int:
    import logging
    from functools import partial

    import trio

    from mmthreads.runtime.service import serve_until_signalled

    settings = _load(args)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    trio.run(partial(serve_until_signalled, settings))
    return 0


def _check_config(args: argparse.Namespace) -> int:
    from functools import partial

    import trio

    from mmthreads.runtime.startup import run_checks

    settings = _load(args)
    checks = trio.run(partial(run_checks, settings))
    for check in checks:
        print(check)
    return 0 if all(check.ok for check in checks) else 1


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
    import logging

    from mmthreads.demo import run_demo

    # The bridge's log would drown the DM: only warnings and errors, and on stderr.
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # hypercorn (under the harness servers) announces each bind at INFO level on its own logger.
    logging.getLogger("hypercorn.error").addFilter(lambda record: record.levelno >= logging.WARNING)
    try:
        return run_demo(sys.stdout, keep_running=args.keep_running)
    except MmthreadsError as exc:
        print(f"mmthreads: {exc}", file=sys.stderr)
        return 1


def _harness(args: argparse.Namespace) -> int:
    import trio

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
    if args.command in ("run", "check-config"):
        try:
            return _run(args) if args.command == "run" else _check_config(args)
        except ConfigError as exc:
            print(f"mmthreads: {exc}", file=sys.stderr)
            return 2
        except MmthreadsError as exc:
            print(f"mmthreads: {exc}", file=sys.stderr)
            return 1
    if args.command == "harness":
        try:
            return _harness(args)
        except MmthreadsError as exc:
            print(f"mmthreads: {exc}", file=sys.stderr)
            return 2
    raise AssertionError(args.command)  # pragma: no cover - argparse enforces the choices
