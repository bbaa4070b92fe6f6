"""``python -m tests.chaos [--broker tansu|apache|both] [--ticks N] [--kills K] [--outages]``

The full-size chaos suite (10,000 ticks, 20 kills, the outages) on both brokers, each run
against a reference run of the same replay without faults. Prints one figures line per
broker and exits non-zero if any invariant failed.
"""

from __future__ import annotations

import argparse
import sys

from tests.chaos.harness import Faults, check, compare, figures, run, summary, workspace


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos")
    parser.add_argument("--broker", choices=("tansu", "apache", "both"), default="both")
    parser.add_argument("--ticks", type=int, default=10_000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--speed", type=float, default=5.0)
    parser.add_argument("--outages", action="store_true",
                        help="also stall Redis, pause a stage, restart PostgreSQL and the "
                             "broker (Apache Kafka only: tansu keeps no data)")
    args = parser.parse_args()
    brokers = ("tansu", "apache") if args.broker == "both" else (args.broker,)
    ok = True
    with workspace(args.ticks) as (root, replay):
        for broker in brokers:
            reference = run(broker, args.ticks, Faults(), speed=args.speed, root=root,
                            replay=replay, name=f"{broker}-reference")
            print("reference", summary(reference), flush=True)
            faults = Faults(kills=args.kills)
            if args.outages:
                faults.stall_redis = 10.0
                faults.pause_stage = ("portfolio-manager", "trading-engine")
                faults.restart_postgres = True
                faults.kill_broker = broker == "apache"
            result = run(broker, args.ticks, faults, speed=args.speed, root=root,
                         replay=replay, name=f"{broker}-chaos",
                         on_progress=lambda s: print("  ", s, flush=True))
            print("chaos    ", summary(result), flush=True)
            inv = check(result)
            ref_inv = check(reference)
            differs = compare(result, reference)
            for line in (inv.details + differs)[:20]:
                print("   ", line)
            print(f"{broker}: {figures(result.kills, inv, len(differs))} "
                  f"reference_ok={not (ref_inv.duplicates or ref_inv.lost or ref_inv.mismatches)}"
                  f" orders={len(result.orders)} fills={len(result.fills)}", flush=True)
            ok = ok and not (inv.duplicates or inv.lost or inv.mismatches
                             or inv.limit_breaches or differs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
