"""``alphaspt``: run the whole pipeline locally, or one component against configured servers.

    alphaspt init DIR
    alphaspt up [-f DIR] [--for SECONDS] [--feed mock|replay ...] [--kite-sim]
    alphaspt status [--json]
    alphaspt pause NAME | resume NAME [--kube]
    alphaspt kill [--flatten] [--off] [--kube]
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
import json
import logging
import sys
from importlib import metadata
from pathlib import Path

from alphaspt.core.config import Settings, load_settings
from alphaspt.exceptions import AlphasptError, InvalidConfiguration
from alphaspt.workers import STAGES

CONTROL_COMMANDS = ("pause", "resume", "kill")


def version() -> str:
    try:
        return metadata.version("alphaspt")
    except metadata.PackageNotFoundError:  # run from a clone without installing
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alphaspt", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"alphaspt {version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    init = sub.add_parser("init", help="write the example manifests and a replay file to DIR")
    init.add_argument("directory", type=Path, metavar="DIR")

    up = sub.add_parser("up", help="run everything locally on embedded servers")
    up.add_argument("-f", "--manifests", type=Path, default=None,
                    help="directory (or file) of TradingStrategy/RiskProfile YAML; followed "
                         "while up runs (default: ./examples in a clone)")
    up.add_argument("--for", dest="duration", type=float, default=None, metavar="SECONDS",
                    help="stop after this many seconds (default: until Ctrl-C)")
    up.add_argument("--kite-sim", action="store_true",
                    help="start the Kite-protocol simulator and trade the strategies Live on it")
    _feed_arguments(up)
    _control_parsers(sub)

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


def _control_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = sub.add_parser("status", help="strategies, positions, P&L and worker health of "
                                           "the running alphaspt up")
    status.add_argument("--json", action="store_true", help="print the raw status as JSON")
    for name, what in (("pause", "stop a strategy opening orders"),
                       ("resume", "let a paused strategy trade again")):
        cmd = sub.add_parser(name, help=what)
        cmd.add_argument("name", metavar="NAME", help="the TradingStrategy's name")
        cmd.add_argument("--kube", action="store_true",
                         help="patch the custom resource in the cluster instead")
    kill = sub.add_parser("kill", help="engage the kill switch: no new risk anywhere")
    kill.add_argument("--flatten", action="store_true",
                      help="also square off every open position")
    kill.add_argument("--off", action="store_true", help="release the kill switch")
    kill.add_argument("--kube", action="store_true",
                      help="patch killSwitch of every RiskProfile in the cluster instead")


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
        level = "INFO" if args.command in ("worker", "operator", "api", "migrate") else "WARNING"
        level = settings.log_level.upper() if level == "INFO" else level
        logging.basicConfig(level=level, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("alembic").setLevel(logging.WARNING)
        if getattr(args, "feed", None) == "replay" and args.replay is None:
            raise AlphasptError("--feed replay needs --replay FILE")
        return _run(args, settings)
    except AlphasptError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"alphaspt: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _say(line: str) -> None:
    print(line, flush=True)


def _manifests(given: Path | None) -> Path:
    if given is not None:
        return given
    if Path("examples").is_dir():
        return Path("examples")
    raise InvalidConfiguration("no manifests here: run `alphaspt init DIR` (writes the "
                               "examples), then `alphaspt up -f DIR`")


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "up":
        from alphaspt.local.runtime import LocalRuntime, UpOptions

        options = UpOptions(manifests=_manifests(args.manifests), duration=args.duration,
                            feed=args.feed, replay=args.replay, speed=args.speed,
                            kite_sim=args.kite_sim)
        return LocalRuntime(settings, options, out=_say).up()
    if args.command == "init":
        from alphaspt.local.examples import write_examples

        written = write_examples(args.directory)
        _say(f"wrote {len(written)} files to {args.directory}; run: alphaspt up -f "
             f"{args.directory}")
        return 0
    if args.command == "status" or args.command in CONTROL_COMMANDS:
        return _control(args, settings)
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
    import time

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
    # A flag polled by a sleeping main thread, not an untimed threading.Event.wait():
    # when the kernel delivers the signal to one of the server's threads, a main thread
    # blocked on a lock never runs the Python handler (seen: a kite-sim that ignored
    # SIGTERM for 25 minutes in CI).
    stop: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda n, _frame: stop.append(n))
    symbols = tuple(s.strip() for s in args.symbols.split(",") if s.strip())
    sim = Simulator(Book(api_key, api_secret), redirect_url=args.redirect_url, symbols=symbols)
    with SimServer(sim, args.host, args.port) as server:
        print(f"API root     {server.api_root}   (ALPHASPT_KITE__API_ROOT)")
        print(f"ticker root  {server.ticker_root}   (ALPHASPT_KITE__TICKER_ROOT)")
        print(f"login URL    {server.api_root}/connect/login   (ALPHASPT_KITE__LOGIN_URL)",
              flush=True)
        while not stop:
            time.sleep(0.2)
    return 0


def _control(args: argparse.Namespace, settings: Settings) -> int:
    from alphaspt.local.control import KubeControl, LocalControl, orders_for, status_lines

    if args.command != "status":
        orders = orders_for(args.command, getattr(args, "name", None),
                            flatten=getattr(args, "flatten", False),
                            off=getattr(args, "off", False))
        if args.kube:
            for line in KubeControl(settings).apply(orders):
                _say(f"patched   {line}")
            return 0
        local = LocalControl(settings)
        name = getattr(args, "name", None)
        if name is not None and name not in local.strategy_names():
            raise InvalidConfiguration(
                f"no TradingStrategy {name!r} in the running up (it has: "
                f"{', '.join(local.strategy_names()) or 'none'})")
        local.publish(orders)
        for order in orders:
            value = "" if order.command.value in ("PAUSE", "RESUME", "FLATTEN") else (
                " on" if order.value else " off")
            _say(f"published {order.command.value}{value} for {order.kind} {order.target} "
                 f"on control.commands (alphaspt up pid {local.up.pid})")
        return 0
    local = LocalControl(settings)
    portfolio = local.portfolio()
    if args.json:
        views, totals = ([], None) if isinstance(portfolio, str) else portfolio
        _say(json.dumps({"up": dict(local.up.info), "status": local.up.status(),
                         "portfolio": None if totals is None else {
                             "strategies": [_plain(v) for v in views],
                             "totals": _plain(totals)}}, indent=1, default=str))
        return 0
    for line in status_lines(local.up, portfolio):
        _say(line)
    return 0


def _plain(value: object) -> object:
    import msgspec

    return msgspec.to_builtins(value)
