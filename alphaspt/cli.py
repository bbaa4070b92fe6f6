"""``alphaspt``: run the whole pipeline locally, or one component against configured servers.

    alphaspt up [-f DIR] [--for SECONDS] [--feed mock|replay --replay FILE --speed X]
    alphaspt worker STAGE [--strategy NAME] [...]
    alphaspt operator
    alphaspt api
    alphaspt migrate

Settings come from the environment (``ALPHASPT_...``) and ``config/settings.toml``; this
is the only module that reads them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from alphaspt.core.config import Settings, load_settings
from alphaspt.exceptions import AlphasptError
from alphaspt.workers import STAGES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alphaspt", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run everything locally on embedded servers")
    up.add_argument("-f", "--manifests", type=Path, default=Path("examples"),
                    help="directory (or file) of TradingStrategy/RiskProfile YAML")
    up.add_argument("--for", dest="duration", type=float, default=None, metavar="SECONDS",
                    help="stop after this many seconds (default: until Ctrl-C)")
    _feed_arguments(up)

    worker = sub.add_parser("worker", help="run one stream stage")
    worker.add_argument("stage", choices=STAGES)
    worker.add_argument("--strategy", help="strategy-runner: the TradingStrategy's name")
    _feed_arguments(worker)
    worker.add_argument("--interval", type=float, default=0.25,
                        help="market-feed mock: seconds between rounds of ticks")
    worker.add_argument("--seed", type=int, default=None, help="market-feed mock: seed")
    worker.add_argument("--kite-mode", choices=("quote", "full"), default="quote",
                        help="market-feed kite: streaming mode (full adds depth: bid/ask)")

    sub.add_parser("operator", help="run the Kubernetes operator")
    sub.add_parser("api", help="run the read API and dashboard")
    sub.add_parser("migrate", help="apply database migrations")
    return parser


def _feed_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--feed", choices=("mock", "replay", "kite"), default="mock",
                        help="market feed: seeded random walk, CSV replay or Kite's ticker "
                             "(ALPHASPT_KITE__* settings)")
    parser.add_argument("--replay", type=Path, default=None,
                        help="CSV of ticks: timestamp,symbol,price,quantity[,volume]")
    parser.add_argument("--speed", type=float, default=None,
                        help="replay pacing (x real time); default as fast as possible")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        # `up` talks to the user through its own lines; its workers log to files.
        level = "WARNING" if args.command == "up" else settings.log_level.upper()
        logging.basicConfig(level=level, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("alembic").setLevel(logging.WARNING)
        if getattr(args, "feed", None) == "replay" and args.replay is None:
            raise AlphasptError("--feed replay needs --replay FILE")
        return _run(args, settings)
    except AlphasptError as exc:
        print(f"alphaspt: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "up":
        from alphaspt.local.runtime import LocalRuntime, UpOptions

        options = UpOptions(manifests=args.manifests, duration=args.duration, feed=args.feed,
                            replay=args.replay, speed=args.speed)
        return LocalRuntime(settings, options, out=lambda line: print(line, flush=True)).up()
    if args.command == "worker":
        from alphaspt.workers.registry import WorkerOptions, run_stage

        run_stage(args.stage, settings, WorkerOptions(
            strategy=args.strategy, feed=args.feed, replay=args.replay, speed=args.speed,
            interval=args.interval, seed=args.seed, kite_mode=args.kite_mode))
        return 0
    if args.command == "operator":
        from alphaspt.operator.main import run as run_operator

        run_operator(settings)
        return 0
    if args.command == "api":
        from alphaspt.api.app import run as run_api

        run_api(settings)
        return 0
    if args.command == "migrate":
        from alphaspt.core.db.migrate import migrate_sync

        if settings.postgres.url is None:
            raise AlphasptError("set ALPHASPT_POSTGRES__URL")
        migrate_sync(settings.postgres.url.get_secret_value())
        print("migrations applied")
        return 0
    raise AssertionError(args.command)
