"""Mean ± std over seeds of `bertlite compress` runs: every row of their reports (teacher, each stage, the
shrink-and-fine-tune baseline), and the per-seed difference between the final model and the baseline.

Each run folder's report (DIR/final/report.json, written by compress's evaluation stage or by `bertlite benchmark
--from DIR`, which names every model as compress does) holds the test metric of every model; sizes and latencies
are the first run's (the same shape in every run; time them with `bertlite benchmark --from DIR` on a quiet
machine).

    for s in 0 1 2; do bertlite compress --seed $s --output_dir runs/compress-s$s; done   # or share s0's teacher
    python scripts/compress_seeds.py runs/compress-s0 runs/compress-s1 runs/compress-s2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys


def load(run: str) -> dict:
    path = os.path.join(run, "final", "report.json")
    if not os.path.isfile(path):
        raise SystemExit(f"{run}: no final/report.json (run its evaluation stage, or bertlite benchmark --from {run})")
    with open(path) as f:
        return json.load(f)


def fmt(values: list[float]) -> str:
    mean = 100 * statistics.mean(values)
    return f"{mean:.2f} ± {100 * statistics.stdev(values):.2f}" if len(values) > 1 else f"{mean:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="compress run folders, one per seed")
    args = parser.parse_args()
    reports = [load(run) for run in args.runs]
    main_key = reports[0]["main"]
    rows = {}  # name -> per-run rows, in the first report's order
    for report in reports:
        for row in report["models"]:
            rows.setdefault(row["label"], []).append(row)
    teacher = rows[reports[0]["models"][0]["label"]]
    print(f"python {' '.join(sys.argv)}\n")
    print(f"| model | {main_key} per run | mean ± std | of the teacher | size (MB) | faster b8 / b1 (first run) |")
    print("|---|---|---|---|---|---|")
    for name, found in rows.items():
        if len(found) != len(reports):
            print(f"| {name} | in {len(found)} of {len(reports)} runs: left out | | | | |")
            continue
        values = [r[main_key] for r in found]
        share = statistics.mean(v / t[main_key] for v, t in zip(values, teacher))
        first = found[0]
        speed = " / ".join(f"{first.get(f'speedup_b{b}', 0):.2f}x" for b in (8, 1)) if first.get("speedup_b8") else "–"
        role = " (baseline)" if first.get("role") == "baseline" else ""
        print(f"| {name}{role} | {' / '.join(f'{100 * v:.2f}' for v in values)} | {fmt(values)} | {100 * share:.1f}% | "
              f"{first['size_mb']:.1f} | {speed} |")
    finals = [[r for r in report["models"] if r.get("role") != "baseline"][-1] for report in reports]
    baselines = [next((r for r in report["models"] if r.get("role") == "baseline"), None) for report in reports]
    if all(baselines):
        diffs = [f[main_key] - b[main_key] for f, b in zip(finals, baselines)]
        each = " / ".join(f"{100 * d:+.2f}" for d in diffs)
        spread = f" ± {100 * statistics.stdev(diffs):.2f}" if len(diffs) > 1 else ""
        print(f"\nfinal − baseline, paired per seed: {100 * statistics.mean(diffs):+.2f}{spread} points ({each})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
