"""``alphaspt``: run the whole pipeline locally, or one component against configured servers.

    alphaspt up [-f DIR] [--for SECONDS] [--feed mock|replay ...] [--kite-sim]
    alphaspt worker STAGE [--strategy NAME] [...]
    alphaspt operator
    alphaspt api
    alphaspt migrate
    alphaspt kite login [--listen PORT | --request-token T] [--secret NAME]
    alphaspt kite-sim [--port P] [--redirect-url URL] [--symbols A,B,...]

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
    up.add_argument("--kite-sim", action="store_true",
                    help="start the Kite-protocol simulator and trade the strategies Live on it")
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

    kite = sub.add_parser("kite", help="Zerodha Kite Connect").add_subparsers(
        dest="kite_command", required=True)
    login = kite.add_parser("login", help="the daily login: store the day's access token")
    how = login.add_mutually_exclusive_group()
    how.add_argument("--listen", type=int, metavar="PORT",
                     help="take the redirect on http://127.0.0.1:PORT/ (the app's redirect URL)")
    how.add_argument("--request-token", help="the request_token (else it is asked for)")
    login.add_argument("--secret", metavar="NAME",
                       help="store in this Kubernetes Secret (a strategy's brokerSecretRef)")
    login.add_argument("--namespace", default=None, help="the Secret's namespace")

    sim = sub.add_parser("kite-sim", help="run the Kite-protocol simulator")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=0, help="0: a free port")
    sim.add_argument("--redirect-url", default=None,
                     help="where its /connect/login sends the request token")
    sim.add_argument("--symbols", default="RELIANCE,TCS,INFY,HDFCBANK,SBIN",
                     help="NSE equities in its instruments dump and on its ticker "
                          "(comma-separated; empty: REST only)")
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
                            replay=args.replay, speed=args.speed, kite_sim=args.kite_sim)
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
    if args.command == "kite":
        return _kite_login(args, settings)
    if args.command == "kite-sim":
        return _kite_sim(args, settings)
    if args.command == "migrate":
        from alphaspt.core.db.migrate import migrate_sync

        if settings.postgres.url is None:
            raise AlphasptError("set ALPHASPT_POSTGRES__URL")
        migrate_sync(settings.postgres.url.get_secret_value())
        print("migrations applied")
        return 0
    raise AssertionError(args.command)


def _kite_login(args: argparse.Namespace, settings: Settings) -> int:
    import getpass

    from alphaspt.brokers.kite import KITE_TOKEN_FILE, FileTokenStore
    from alphaspt.brokers.kite.login import (
        exchange,
        login_url,
        request_token_of,
        store_in_secret,
        wait_for_redirect,
    )

    print(f"open this URL and log in: {login_url(settings.kite)}", flush=True)
    if args.listen:
        print(f"waiting for the redirect on http://127.0.0.1:{args.listen}/ ...", flush=True)
        token = wait_for_redirect(args.listen)
    else:
        token = request_token_of(args.request_token or getpass.getpass(
            "request_token (or the whole redirect URL): "))
    session = exchange(settings.kite, token)
    if args.secret:
        from kubernetes import client

        from alphaspt.operator.kube import load_configuration

        api = client.CoreV1Api(client.ApiClient(load_configuration(settings.operator.kubeconfig)))
        namespace = args.namespace or settings.namespace
        store_in_secret(session, api, namespace, args.secret)
        where = f"Secret {namespace}/{args.secret}"
    else:
        path = settings.kite.token_file or settings.local.state_dir / KITE_TOKEN_FILE
        FileTokenStore(path).write(session.access_token, session.login_time)
        where = str(path)
    print(f"stored the access token in {where}; it expires {session.expires:%Y-%m-%d %H:%M} IST")
    return 0


def _kite_sim(args: argparse.Namespace, settings: Settings) -> int:
    import os
    import secrets
    import signal
    import threading

    from alphaspt.kite_sim import Book, SimServer, Simulator

    kite = settings.kite
    api_key = kite.api_key or "sim" + secrets.token_hex(6)
    if kite.api_secret is not None:
        api_secret = kite.api_secret.get_secret_value()
    else:
        api_secret = secrets.token_hex(16)
        settings.local.state_dir.mkdir(parents=True, exist_ok=True)
        creds = settings.local.state_dir / "kite-sim.env"
        fd = os.open(creds, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"ALPHASPT_KITE__API_KEY={api_key}\nALPHASPT_KITE__API_SECRET={api_secret}\n")
        print(f"API key and secret (mode 0600): {creds}")
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    symbols = tuple(s.strip() for s in args.symbols.split(",") if s.strip())
    sim = Simulator(Book(api_key, api_secret), redirect_url=args.redirect_url, symbols=symbols)
    with SimServer(sim, args.host, args.port) as server:
        print(f"API root     {server.api_root}   (ALPHASPT_KITE__API_ROOT)")
        print(f"ticker root  {server.ticker_root}   (ALPHASPT_KITE__TICKER_ROOT)")
        print(f"login URL    {server.api_root}/connect/login   (ALPHASPT_KITE__LOGIN_URL)",
              flush=True)
        done.wait()
    return 0
