"""``python -m bench``: every benchmark of AlphasPT, one table, results in bench/results/.

    python -m bench [--broker apache|tansu] [--quick] [--only throughput,peer,latency,...]

Starts its own broker (Apache Kafka 4.x from ~/.cache/alphaspt by default; ``--broker
tansu``), PostgreSQL and Redis on free loopback ports, runs each section with its
baselines measured in the same run (candidates interleaved, each in its own process pinned
to a core where possible), prints one table (figure, value, baseline, ratio, goal, met),
writes ``bench/results/<date>-<commit>.json`` and ``bench/results/latest.json`` and PNG
plots of the latency distributions, and stops everything it started. ``--quick`` runs
every section at a reduced size (for development; the figures are noisier).

``--only`` runs some sections: its JSON goes to ``<date>-<commit>-<sections>.json`` and is
merged into ``latest.json``, replacing that file's figures of the sections run and keeping
the others (``runs`` in the file says when, at which commit and size, each was measured).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import (
    RESULTS,
    ROOT,
    Figure,
    cores,
    elsewhere,
    git_commit,
    interleave,
    load,
    machine,
    run_child,
    start_broker,
    summary,
    table,
    top_frames,
    venv_python,
)

SECTIONS = ("throughput", "peer", "latency", "operator", "api")
Ends = dict[str, dict[int, int]]


def prepared(bootstrap: str, postgres: str, n: int) -> Callable[[], Ends]:
    """Fills the inputs of the throughput and peer sections once, on first use; returns
    their end offsets (both sections count the same messages)."""
    ends: list[Ends] = []

    def fill() -> Ends:
        if not ends:
            from alphaspt.core.config import KafkaConfig
            from bench import throughput as tp

            print(f"filling {n:,} ticks and their features")
            ends.append(tp.prepare(KafkaConfig(bootstrap_servers=bootstrap), n, postgres))
        return ends[0]

    return fill


def throughput(bootstrap: str, postgres: str, redis: str, ends: Ends, rounds: int,
               core: int | None) -> list[Figure]:
    from bench import throughput as tp

    n = sum(ends[tp.input_topic("bare")].values())

    def run(candidate: str) -> dict[str, Any]:
        return run_child("bench.throughput", {
            "candidate": candidate, "bootstrap": bootstrap, "postgres": postgres,
            "redis": redis, "topic": tp.input_topic(candidate), "ends": ends}, core=core)

    samples = interleave(tp.CANDIDATES, rounds, run)
    rate = {c: summary([s["msgs_per_s"] for s in samples[c]]) for c in tp.CANDIDATES}
    cpu = {c: summary([s["cpu_us_per_msg"] for s in samples[c]]) for c in tp.CANDIDATES}
    figures = [Figure(f"throughput {c} (median; min {rate[c][0]:,.0f})", rate[c][1], "msg/s",
                      note=f"{cpu[c][1]:.1f} us CPU/msg") for c in ("bare", "bare-features")]
    figures.append(Figure("throughput bare-txn (median)", rate["bare-txn"][1], "msg/s",
                          "bare", rate["bare"][1],
                          note=f"transactions of 2,000; {cpu['bare-txn'][1]:.1f} us CPU/msg"))
    for stage in tp.STAGES:
        base = tp.BASELINE[stage]
        figures.append(Figure(
            f"throughput {stage} (median; min {rate[stage][0]:,.0f})", rate[stage][1],
            "msg/s", base, rate[base][1], goal=">= 0.6",
            note=f"{cpu[stage][1]:.1f} us CPU/msg vs {cpu[base][1]:.1f}"))
    missed = [f for f in figures if f.met is False]
    if missed:
        slowest = min(missed, key=lambda f: f.ratio or 0.0)
        stage = slowest.name.split()[1]
        print(f"throughput: {stage} misses its goal; profiling it with py-spy")
        raw = RESULTS / f"profile-{stage}.raw"
        RESULTS.mkdir(parents=True, exist_ok=True)
        try:
            run_child("bench.throughput", {
                "candidate": stage, "bootstrap": bootstrap, "postgres": postgres,
                "redis": redis, "topic": tp.input_topic(stage), "ends": ends},
                core=core, profile=raw)
            top = RESULTS / f"profile-{stage}.txt"
            top.write_text(f"py-spy, {stage} on {n:,} messages: frames by own time "
                           f"(on-CPU samples of the main thread inside "
                           f"StreamProcessor.step)\n"
                           f"{top_frames(raw, 40, within='StreamProcessor.step')}\n")
            slowest.note += f"; profile {top.relative_to(RESULTS.parent)}"
        except (RuntimeError, OSError) as exc:
            print(f"  profile failed: {exc}")
        finally:
            raw.unlink(missing_ok=True)
    return figures


PEER = "quixstreams"
PEER_STAGES = ("feature-engine", "strategy-runner")
"""AlphasPT's side of the peer comparison: there is no chaining of two stages in one
process, so each runs alone (the runner on the precomputed features) and the pipeline's
rate is the slower one's, as two pipelined processes reach it."""


def peer(bootstrap: str, postgres: str, redis: str, ends: Ends, rounds: int,
         core: int | None) -> list[Figure]:
    """The feature engine + momentum strategy written with quixstreams (bench/peer_quix.py,
    its own venv) against AlphasPT's feature engine and strategy runner, same ticks, same
    broker, interleaved, each candidate in its own pinned process."""
    from bench import throughput as tp

    python = venv_python("bench-quix-venv", ROOT / "bench" / "requirements-quix.txt")
    ticks = tp.input_topic("feature-engine")

    def run(candidate: str) -> dict[str, Any]:
        args = {"candidate": candidate, "bootstrap": bootstrap, "postgres": postgres,
                "redis": redis, "ends": ends}
        if candidate != PEER:
            return run_child("bench.throughput", {**args, "topic": tp.input_topic(candidate)},
                             core=core)
        return run_child("bench.peer_quix", {
            **args, "topic": ticks, "partitions": tp.PARTITIONS,
            "features_topic": "bench.quix.features", "signals_topic": "bench.quix.signals",
            # the strategy runner's parameters (bench/throughput.py seeds them)
            "momentum": {"strategy": tp.STRATEGY, "quantity": 10, "threshold": 0.5,
                         "allow_short": True, "warmup": 26}}, core=core, python=python)

    print(f"peer: {PEER} vs AlphasPT's {' + '.join(PEER_STAGES)} on "
          f"{sum(ends[ticks].values()):,} ticks")
    samples = interleave((PEER, *PEER_STAGES), rounds, run)
    rate = {c: summary([s["msgs_per_s"] for s in samples[c]]) for c in samples}
    cpu = {c: summary([s["cpu_us_per_msg"] for s in samples[c]])[1] for c in samples}
    slower = min(PEER_STAGES, key=lambda c: rate[c][1])
    ours = rate[slower][1]
    ours_cpu = sum(cpu[c] for c in PEER_STAGES)
    return [Figure(
        f"{PEER} peer (features+momentum; min {rate[PEER][0]:,.0f})", rate[PEER][1], "msg/s",
        "AlphasPT feature-engine | strategy-runner, slower stage (not chained)", ours,
        ratio=ours / rate[PEER][1], goal=">= 3",
        note=(f"ratio = AlphasPT msg/s / {PEER} msg/s (>= 3: AlphasPT at least 3x faster); "
              f"medians of {rounds}: {slower} is the slower, feature-engine "
              f"{rate['feature-engine'][1]:,.0f}, strategy-runner "
              f"{rate['strategy-runner'][1]:,.0f}; CPU per tick {PEER} {cpu[PEER]:.1f} us, "
              f"AlphasPT both stages {ours_cpu:.1f} us (ratio {cpu[PEER] / ours_cpu:.2f}); "
              f"{samples[PEER][-1]['features']:,} features, "
              f"{samples[PEER][-1]['signals']:,} signals"))]


def latency(broker: str, seconds: float) -> list[Figure]:
    from bench import latency as lat
    from bench.harness import quantile

    figures: list[Figure] = []
    runs = []
    for rate in (1000, 5000):
        print(f"latency: alphaspt up --feed replay at {rate:,} ticks/s for {seconds:g} s")
        result = lat.run(rate, seconds, broker)
        runs.append(result)
        probe = result["probe_ms"]
        for what, key in (("tick->order visible", "order_ms"),
                          ("tick->portfolio in Redis", "redis_ms")):
            values = result[key]
            if not values:
                figures.append(Figure(f"{what} p99 @{rate}/s", float("nan"), "ms",
                                      note="no samples"))
                continue
            for q, label in ((0.5, "p50"), (0.99, "p99"), (0.999, "p99.9")):
                figures.append(Figure(
                    f"{what} {label} @{rate}/s", quantile(values, q), "ms",
                    f"broker round trip {label}", quantile(probe, q),
                    goal="<= 3" if label == "p99" and key == "order_ms" and rate == 1000
                    else None, note=f"{len(values)} samples"))
        for hop in lat.HOPS:
            values = result["hops_ms"][hop]
            if values:
                figures.append(Figure(
                    f"hop {hop} p99 @{rate}/s", quantile(values, 0.99), "ms",
                    note=f"p50 {quantile(values, 0.5):.0f} ms, {len(values)} orders traced"))
    plot_latency(runs)
    return figures


def operator(postgres: str, redis: str, bootstrap: str, quick: bool) -> list[Figure]:
    from bench import bench_operator

    print("operator: apply -> Deployment against a real kube-apiserver")
    runs, many = (10, 30) if quick else (20, 100)
    out = bench_operator.measure(postgres, redis, bootstrap, runs, many)
    ms = 1000.0
    return [
        Figure(f"apply -> Deployment p50, {runs} one at a time", out[f"apply_p50_{runs}"] * ms,
               "ms", "API server alone (POST) p50", out[f"post_p50_{runs}"] * ms,
               note=f"p90 {out[f'apply_p90_{runs}'] * ms:.0f} ms"),
        Figure(f"apply -> Deployment p50, {many} back to back", out[f"apply_p50_{many}"] * ms,
               "ms", "API server alone (POST) p50", out[f"post_p50_{many}"] * ms),
        Figure(f"{many} strategies: all Deployments", out[f"all_deployments_{many}"], "s",
               f"{many} POSTs", out[f"all_posts_{many}"],
               note=f"all reconciled (status) in {out[f'all_reconciled_{many}']:.1f} s"),
    ]


def api(redis: str, quick: bool) -> list[Figure]:
    from bench import bench_api
    from bench.harness import quantile

    print("api: /api/v1/portfolio vs /healthz, then 50 WebSocket clients")
    out = bench_api.run(redis, 1000 if quick else 4000, 8, 2 if quick else 4, 5, 50,
                        40 if quick else 100)
    (b50, b99, brps), (c50, c99, crps) = out["/healthz"], out["/api/v1/portfolio"]
    lags = out["stream_lags"]
    return [
        Figure("/api/v1/portfolio p50 (c=8)", c50 * 1e3, "ms", "/healthz p50", b50 * 1e3),
        Figure("/api/v1/portfolio p99 (c=8)", c99 * 1e3, "ms", "/healthz p99", b99 * 1e3),
        Figure("/api/v1/portfolio throughput (c=8)", crps, "req/s", "/healthz", brps),
        Figure("WebSocket delivery lag p99, 50 clients", quantile(lags, 0.99) * 1e3, "ms",
               note=f"p50 {quantile(lags, 0.5) * 1e3:.1f} ms over {len(lags)} deliveries"),
    ]


def plot_latency(runs: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    RESULTS.mkdir(parents=True, exist_ok=True)
    for result in runs:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for key, label in (("probe_ms", "broker round trip"), ("order_ms", "tick -> order"),
                           ("redis_ms", "tick -> portfolio in Redis")):
            values = sorted(result[key])
            if values:
                ax.plot(values, [i / len(values) for i in range(len(values))], label=label)
        ax.set_xscale("log")
        ax.set_xlabel("latency (ms, log scale)")
        ax.set_ylabel("fraction of samples <= x")
        ax.set_title(f"latency CDF at {result['rate']:,} ticks/s")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(RESULTS / f"latency-{result['rate']}.png", dpi=100)
        plt.close(fig)


def guarded(section: str, measure: Callable[[], list[Figure]]) -> list[Figure]:
    """A section that fails is one row saying why; the others still run and are written."""
    try:
        figures = measure()
        for figure in figures:
            figure.section = section
        return figures
    except Exception as exc:  # a benchmark that breaks must not lose the others' figures
        traceback.print_exc()
        return [Figure(f"{section}: FAILED", float("nan"), "", section=section,
                       note=f"{type(exc).__name__}: {str(exc)[:300]}")]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--broker", choices=("apache", "tansu"), default="apache")
    parser.add_argument("--quick", action="store_true", help="reduced sizes (development)")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections of {', '.join(SECTIONS)}")
    parser.add_argument("--ticks", type=int, help="messages per throughput candidate")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per candidate")
    args = parser.parse_args()
    sections = [s for s in args.only.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {', '.join(sorted(unknown))}")
    n = args.ticks or (20_000 if args.quick else 50_000)
    rounds = args.rounds or (2 if args.quick else 3)
    usable = cores()
    core = usable[-1] if len(usable) > 1 else None

    from alphaspt.local.servers import EmbeddedPostgres, EmbeddedRedis

    started = time.monotonic()
    load_before = load()
    state = Path(tempfile.mkdtemp(prefix="alphaspt-bench-"))
    print(f"starting {args.broker}, PostgreSQL and Redis")
    with elsewhere(core):
        bootstrap, stop_broker = start_broker(args.broker)
    pg = EmbeddedPostgres(state / "pg")
    rd = EmbeddedRedis(state / "redis")
    figures: list[Figure] = []
    try:
        with elsewhere(core):
            pg.start()
            rd.start()
        inputs = prepared(bootstrap, pg.url, n)
        for section, measure in (
                ("throughput",
                 lambda: throughput(bootstrap, pg.url, rd.url, inputs(), rounds, core)),
                ("peer", lambda: peer(bootstrap, pg.url, rd.url, inputs(), rounds, core)),
                ("operator", lambda: operator(pg.url, rd.url, bootstrap, args.quick)),
                ("api", lambda: api(rd.url, args.quick))):
            if section in sections:
                figures += guarded(section, measure)
    finally:
        rd.stop()
        pg.stop()
        stop_broker()
        shutil.rmtree(state, ignore_errors=True)
    if "latency" in sections:  # alphaspt up brings its own broker, PostgreSQL and Redis
        figures += guarded("latency", lambda: latency(args.broker, 8.0 if args.quick else 15.0))
    print()
    print(table(figures))
    write(figures, args.broker, load_before, time.monotonic() - started, sections, args.quick)


def write(figures: list[Figure], broker: str, load_before: dict[str, Any], seconds: float,
          sections: list[str], quick: bool) -> None:
    """The run's JSON; a run of every section replaces ``latest.json``, a run of some
    (``--only``) replaces only those sections' figures in it."""
    now = datetime.now(UTC)
    commit = git_commit()
    run = {"date": now.isoformat(timespec="seconds"), "commit": commit, "broker": broker,
           "quick": quick}
    doc = {**run, "machine": machine(), "load": {"before": load_before, "after": load()},
           "sections": sections, "seconds": round(seconds, 1),
           "runs": {section: run for section in sections},
           "figures": [f.as_json() for f in figures]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    partial = set(sections) != set(SECTIONS)
    path = RESULTS / (f"{now:%Y-%m-%d}-{commit}" + (f"-{'-'.join(sections)}" if partial else "")
                      + ".json")
    path.write_text(json.dumps(doc, indent=2) + "\n")
    latest = RESULTS / "latest.json"
    if partial and latest.exists():
        doc = merged(json.loads(latest.read_text()), doc)
    latest.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\n{len(figures)} figures in {seconds:.0f} s -> {path.relative_to(RESULTS.parent)}"
          + (" (merged into latest.json)" if partial else ""))


def merged(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``old`` with the sections of ``new`` replaced. A figure of ``old`` without a
    ``section`` (files written before figures carried one) is kept unless ``new`` has a
    figure of the same name."""
    ran = set(new["sections"])
    names = {f["name"] for f in new["figures"]}
    before = {k: old.get(k) for k in ("date", "commit", "broker")}
    runs = old.get("runs") or {section: before for section in old.get("sections", [])}
    kept = [f for f in old.get("figures", [])
            if f.get("section") not in ran and f["name"] not in names]
    return {**old, "sections": [s for s in SECTIONS if s in ran or s in runs],
            "runs": {**runs, **new["runs"]}, "figures": kept + new["figures"]}


if __name__ == "__main__":
    main()
