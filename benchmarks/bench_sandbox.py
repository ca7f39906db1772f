"""Per-query cost of the agentic sandbox: opening one (an episode's start) and one small query.

    python benchmarks/bench_sandbox.py --org DIR/org.sqlite [--queries 500] [--hostile]

``--hostile`` also times the cases of issue 28 (from ``tests/test_sandbox_hostile.py``) one by one and
the parsing of long turns.

Run it once with this checkout and once with an older one on ``PYTHONPATH`` to compare (the sandbox
of ``seccrm.world.sandbox`` whichever is imported). Opens the agents' copy when this checkout has
one (``seccrm.world.agent_org``), else the org. Prints medians in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--org", required=True)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--hostile", action="store_true", help="time the cases of issue 28 too")
    args = ap.parse_args()

    from seccrm.world.sandbox import Sandbox
    try:
        from seccrm.world.agent_org import agent_org
        org = agent_org(args.org)
    except ImportError:
        org = args.org
    queries = {"point": "SELECT Name FROM Account WHERE Id = 'x'",
               "join": 'SELECT a.Name, count(*) AS n FROM "Case" c JOIN Account a ON a.Id = c.AccountId '
                       "GROUP BY a.Name ORDER BY n DESC LIMIT 5"}
    Sandbox(org).close()                                     # warm: the first worker, the page cache
    opens = []
    for _ in range(50):
        t0 = time.perf_counter()
        Sandbox(org).close()
        opens.append(time.perf_counter() - t0)
    print(f"sandbox open + close: {1000 * statistics.median(opens):.2f} ms (median of 50)")
    with Sandbox(org) as box:
        for name, sql in queries.items():
            box.run(sql)
            times = []
            for _ in range(args.queries):
                t0 = time.perf_counter()
                box.run(sql)
                times.append(time.perf_counter() - t0)
            print(f"query {name}: {1000 * statistics.median(times):.3f} ms (median of {args.queries}), "
                  f"p90 {1000 * sorted(times)[int(0.9 * len(times))]:.3f} ms")

    if args.hostile:
        hostile(org)


def hostile(org: str) -> None:
    import sys
    from pathlib import Path

    from seccrm.world.episode import parse_turn
    from seccrm.world.sandbox import Sandbox
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import test_sandbox_hostile as h

    cases = {"USING leak (Knowledge__kav.PolicyRule__c)": h.LEAKS[0], "NATURAL FULL JOIN leak (Case)": h.LEAKS[4],
             "trim, 60K characters": h.RESOURCES[0], "LIKE, 20K pattern on 300K": h.RESOURCES[3],
             "instr 900K / 450K": h.RESOURCES[6], "CTE expansion, 20 levels": h.RESOURCES[12],
             "CTE expansion, 24 levels": h.RESOURCES[13], "1,900 columns": h.RESOURCES[15],
             "recursive CTE with UNION (temp storage)": h.RESOURCES[17],
             "cross join ORDER BY (sorter)": h.RESOURCES[20]}
    print("| case | seconds | observation |\n|---|---|---|")
    with Sandbox(org) as box:
        for name, sql in cases.items():
            pid = box.worker_pid
            t0 = time.perf_counter()
            r = box.run(sql)
            killed = "worker killed; " if box.worker_pid != pid else ""
            print(f"| {name} | {time.perf_counter() - t0:.2f} | {killed}{r.text.splitlines()[0][:70]} |")
        print(f"worker peak resident memory: {box.peak_rss_mb:.0f} MB")
    for n in (11_000, 22_000, 110_000):
        text = "<execute>" * n
        t0 = time.perf_counter()
        parse_turn(text)
        print(f"parse a turn of {len(text) // 1000} KB of tags: {1000 * (time.perf_counter() - t0):.1f} ms")


if __name__ == "__main__":
    main()
