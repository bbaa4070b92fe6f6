"""``alphaspt status | pause | resume | kill``: control a running ``up`` or a cluster.

Against a running ``alphaspt up`` (found through its state dir, :mod:`alphaspt.local.state`)
the commands publish the operator's :class:`~alphaspt.core.events.Control` events on
``control.commands`` of its broker, flushed before the command returns: every stage acts on
them as it consumes them (the risk manager refuses a paused strategy's and every
kill-switched signal; a runner stops generating). They are overrides of what the manifests
say: ``pause`` holds until ``resume``, ``kill`` until ``kill --off`` (which releases the
global switch, never a profile's own ``killSwitch: true``).

Against a cluster (``--kube``) they patch the custom resources instead (``spec.desiredState``
of a TradingStrategy, ``spec.killSwitch`` of every RiskProfile of the namespace) and the
operator does the rest; the API stays read-only either way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import redis

from alphaspt.core.config import Settings
from alphaspt.core.events import Command, Control, Topics, now_ns
from alphaspt.core.specs import GROUP, VERSION
from alphaspt.core.streaming import EventProducer
from alphaspt.core.views import StrategyView, TotalsView
from alphaspt.exceptions import InfrastructureUnavailable, InvalidConfiguration
from alphaspt.local.state import RunningUp, find_up, read_portfolio
from alphaspt.operator.control import control_event
from alphaspt.operator.planning import RISK_PROFILE, TRADING_STRATEGY

ISSUER = "alphaspt cli"


@dataclass(frozen=True)
class Order:
    """One control action, as the CLI asked for it."""

    command: Command
    kind: str = "*"
    target: str = "*"
    value: bool = True


def orders_for(action: str, name: str | None = None, *, flatten: bool = False,
               off: bool = False) -> list[Order]:
    """The Control commands of ``pause NAME``, ``resume NAME`` and ``kill [--flatten]
    [--off]``, in the order they must be published."""
    if action == "pause":
        return [Order(Command.PAUSE, TRADING_STRATEGY, name or "*")]
    if action == "resume":
        return [Order(Command.RESUME, TRADING_STRATEGY, name or "*")]
    if action == "kill":
        if off and flatten:
            raise InvalidConfiguration("kill: --off and --flatten contradict each other")
        kill = [Order(Command.KILL_SWITCH, "*", "*", not off)]
        return [*kill, Order(Command.FLATTEN, "*", "*")] if flatten else kill
    raise AssertionError(action)


class LocalControl:
    """Talks to the ``up`` running on the settings' state dir."""

    def __init__(self, settings: Settings, out: Callable[[str], None] = print) -> None:
        self.settings = settings
        self.out = out
        self.up: RunningUp = find_up(settings.local.state_dir)

    def _kafka_servers(self) -> str:
        return self.settings.kafka.bootstrap_servers or str(self.up.info["kafka"])

    def _redis_url(self) -> str:
        configured = self.settings.redis.url
        return configured.get_secret_value() if configured else str(self.up.info["redis"])

    def strategy_names(self) -> list[str]:
        return [str(s["name"]) for s in self.up.status().get("strategies", [])]

    def publish(self, orders: Sequence[Order]) -> None:
        """Send the orders on ``control.commands`` and wait for the broker's ack."""
        kafka = self.settings.kafka.model_copy(
            update={"bootstrap_servers": self._kafka_servers()})
        producer = EventProducer(kafka)
        namespace = str(self.up.info.get("namespace") or self.settings.namespace)
        try:
            for order in orders:
                event: Control = msgspec.structs.replace(
                    control_event(order.command, order.kind, namespace, order.target,
                                  now_ns(), value=order.value), issued_by=ISSUER)
                producer.send(Topics.CONTROL, event.target, event)
            producer.flush(10)  # raises InfrastructureUnavailable without the broker's ack
        finally:
            producer.close()

    def portfolio(self) -> tuple[list[StrategyView], TotalsView] | str:
        """The read model, or why it cannot be read."""
        client = redis.Redis.from_url(self._redis_url(), decode_responses=True,
                                      socket_timeout=2, socket_connect_timeout=2)
        try:
            return read_portfolio(client)
        except redis.RedisError as exc:
            return f"Redis unavailable: {exc}"
        finally:
            client.close()


def status_lines(up: RunningUp, portfolio: tuple[list[StrategyView], TotalsView] | str,
                 now: float | None = None) -> list[str]:
    """What ``alphaspt status`` prints: the run, strategies with positions and P&L, the
    kill switches, the workers with health and lag."""
    now = time.time() if now is None else now
    status = up.status()
    started = float(up.info.get("started_at", now))
    lines = [f"alphaspt up (pid {up.pid}) on {up.state_dir}, up {_ago(now - started)}; "
             f"manifests {up.info.get('manifests')}; dashboard {up.info.get('api')}"]
    if status.get("refused"):
        lines.append(f"refused edit: {status['refused']}")
    views: dict[str, StrategyView] = {}
    if isinstance(portfolio, str):
        lines.append(f"portfolio: {portfolio}")
    else:
        views = {v.name: v for v in portfolio[0]}
    lines.append("")
    lines.append(f"{'STRATEGY':24} {'KIND':14} {'STATE':8} {'PROFILE':16} {'ORDERS':>6} "
                 f"{'FILLS':>6} {'REJ':>5} {'NET P&L':>12}  POSITIONS")
    for s in status.get("strategies", []):
        v = views.get(str(s["name"]))
        positions = ", ".join(f"{p.symbol} {p.quantity:+d}" for p in v.positions
                              if p.quantity) if v else ""
        lines.append(
            f"{s['name']:24} {s['strategy']:14} {s['desired_state']:8} {s['risk_profile']:16} "
            f"{v.orders if v else 0:>6} {v.fills if v else 0:>6} {v.rejections if v else 0:>5} "
            f"{(v.net_pnl if v else 0.0):>+12,.2f}  {positions or '-'}")
    if not isinstance(portfolio, str):
        t = portfolio[1]
        lines.append(f"{'total':24} {'':14} {'':8} {'':16} {t.orders:>6} {t.fills:>6} "
                     f"{t.rejections:>5} {t.net_pnl:>+12,.2f}  charges {t.charges:,.2f}")
    engaged = [p["name"] for p in status.get("risk_profiles", []) if p.get("kill_switch")]
    lines.append(f"kill switch in the manifests: {', '.join(engaged) or 'off'} "
                 "(an `alphaspt kill` is not shown here; `kill --off` releases it)")
    lines.append("")
    lines.append(f"{'WORKER':32} {'PID':>7} {'HEALTH':10} {'RESTARTS':>8} {'LAG':>7}  REASON")
    age = now - float(status.get("updated_at", 0) or 0)
    for w in status.get("workers", []):
        health = ("down" if not w.get("alive") else "stalled" if w.get("reason") else "ok")
        lines.append(f"{w['name']:32} {w.get('pid') or '-':>7} {health:10} "
                     f"{w.get('restarts', 0):>8} {w.get('lag', 0):>7}  {w.get('reason') or ''}")
    if age > 10:
        lines.append(f"(worker health is {age:.0f} s old: is up stuck?)")
    return lines


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class KubeControl:
    """Patches the custom resources of the settings' namespace (``--kube``)."""

    def __init__(self, settings: Settings, out: Callable[[str], None] = print) -> None:
        from kubernetes import client

        from alphaspt.operator.kube import load_configuration

        self.namespace = settings.namespace
        self.out = out
        try:
            configuration = load_configuration(settings.operator.kubeconfig)
        except Exception as exc:  # the loaders raise several types, all "no cluster"
            raise InvalidConfiguration(f"--kube: no usable kubeconfig or in-cluster "
                                       f"credentials ({exc})") from None
        self.api = client.CustomObjectsApi(client.ApiClient(configuration))

    def _patch(self, plural: str, name: str, spec: dict[str, Any]) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.api.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, plural,
                                                    name, {"spec": spec})
        except ApiException as exc:
            if exc.status == 404:
                raise InvalidConfiguration(
                    f"{plural} {self.namespace}/{name} not found") from None
            raise InfrastructureUnavailable(
                f"patching {plural} {self.namespace}/{name}: {exc.status} {exc.reason}"
            ) from None

    def _names(self, plural: str) -> list[str]:
        from kubernetes.client.exceptions import ApiException

        try:
            listed = self.api.list_namespaced_custom_object(GROUP, VERSION, self.namespace,
                                                            plural)
        except ApiException as exc:
            raise InfrastructureUnavailable(
                f"listing {plural} in {self.namespace}: {exc.status} {exc.reason}") from None
        items: list[dict[str, Any]] = listed.get("items", []) if isinstance(listed, dict) else []
        return sorted(str(i["metadata"]["name"]) for i in items)

    def apply(self, orders: Sequence[Order]) -> list[str]:
        """Patch what each order means; returns what was patched."""
        from alphaspt.operator.kube import RISK_PROFILES, TRADING_STRATEGIES

        unsupported = [o.command.value for o in orders
                       if o.command not in (Command.PAUSE, Command.RESUME, Command.KILL_SWITCH)]
        if unsupported:
            raise InvalidConfiguration(
                f"--kube: {', '.join(unsupported)} has no field in the custom resources "
                "(kill --flatten works against a running alphaspt up)")
        done = []
        for order in orders:
            if order.command in (Command.PAUSE, Command.RESUME):
                state = "Paused" if order.command is Command.PAUSE else "Running"
                self._patch(TRADING_STRATEGIES, order.target, {"desiredState": state})
                done.append(f"TradingStrategy {order.target}: desiredState {state}")
            else:
                for name in self._names(RISK_PROFILES):
                    self._patch(RISK_PROFILES, name, {"killSwitch": order.value})
                    done.append(f"{RISK_PROFILE} {name}: killSwitch {str(order.value).lower()}")
        return done
