"""Benchmark: the teacher fine-tune's schedule (epochs x learning rate x seed) on the default task, chosen on validation.

Every cell is one `bertlite.distillation.teacher.finetuned_teacher` run (MiniLM on rotten_tomatoes by default): it is
scored on validation after every epoch and keeps its best epoch by the task's main metric. A setting (epochs, lr) is
scored by the mean over seeds of its kept epoch's validation score; the setting with the best mean is chosen, and only
its models are then scored on test, once. Other settings' test scores are never looked at.

    python scripts/bench_teacher.py                                   # the full grid: 3 x 3 x 3 fine-tunes (hours on a CPU)
    python scripts/bench_teacher.py --epochs 2 --learning-rates 1e-4 --seeds 42
    python scripts/bench_teacher.py --epochs 1 --learning-rates 1e-4,2e-4 --seeds 42 --max-train-examples 64   # smoke run
    python scripts/bench_teacher.py --report-only                     # the table of the cells finished so far

Finished cells are kept in --output-dir and reused, so the grid can be run in pieces (one process at a time) and
reported at the end. Results: docs/results/teacher.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v]


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="minilm", help="the pre-trained teacher to fine-tune")
    parser.add_argument("--task", default="rotten_tomatoes")
    parser.add_argument("--epochs", type=_floats, default=[2.0, 3.0, 4.0], help="comma-separated, e.g. 2,3,4")
    parser.add_argument("--learning-rates", type=_floats, default=[5e-5, 1e-4, 2e-4], help="comma-separated")
    parser.add_argument("--seeds", type=_ints, default=[42, 43, 44], help="comma-separated")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--max-train-examples", type=int, default=None, help="a prefix of the training data (smoke runs)")
    parser.add_argument("--output-dir", default="runs/bench_teacher")
    parser.add_argument("--report-only", action="store_true", help="train nothing: report the cells already finished")
    return parser.parse_args(argv)


def cell_dir(args, epochs: float, lr: float, seed: int) -> str:
    subset = f"_n{args.max_train_examples}" if args.max_train_examples else ""
    return os.path.join(args.output_dir, f"{args.model}_{args.task}{subset}", f"e{epochs:g}_lr{lr:g}_s{seed}")


def run_cell(args, epochs: float, lr: float, seed: int) -> dict | None:
    """The kept epoch and its validation scores of one fine-tune (trained now unless finished before)."""
    from bertlite.distillation.teacher import finetuned_teacher, read_marker

    folder = cell_dir(args, epochs, lr, seed)
    if args.report_only:
        recorded = read_marker(folder)
        return recorded if recorded.get("settings", {}).get("epochs") == epochs else None
    start = time.perf_counter()
    finetuned_teacher(args.model, args.task, folder, epochs=epochs, learning_rate=lr, batch_size=args.batch_size,
                      max_length=args.max_length, seed=seed, max_train_examples=args.max_train_examples)
    recorded = read_marker(folder)
    recorded.setdefault("seconds", round(time.perf_counter() - start, 1))
    return recorded


def test_scores(args, folder: str, spec) -> dict:
    """The test metrics of one kept teacher, measured once and cached beside it."""
    from bertlite.data import load_task
    from bertlite.loading import load_model, load_tokenizer
    from bertlite.metrics import evaluate_splits
    from bertlite.record import write_json

    cache = os.path.join(folder, "bench_test_scores.json")
    if os.path.isfile(cache):
        with open(cache) as f:
            return json.load(f)
    dsd, _ = load_task(args.task)
    model = load_model(folder, head="classifier", require_head=True).eval()
    scores = evaluate_splits(model, load_tokenizer(folder), dsd, spec, max_length=args.max_length)
    write_json(cache, scores)
    return scores


def _mean_std(values: list[float]) -> str:
    if not values:
        return "not run"
    mean = statistics.mean(values)
    std = statistics.stdev(values) if len(values) > 1 else math.nan
    spread = f" ± {100 * std:.2f}" if len(values) > 1 else ""
    return f"{100 * mean:.2f}{spread} (n={len(values)})"


def main(argv=None) -> dict:
    args = parse_args(argv)
    from bertlite.data import load_task
    from bertlite.metrics import metric_spec

    _, info = load_task(args.task, max_train_examples=args.max_train_examples)
    spec = metric_spec(info)
    results = {}  # (epochs, lr) -> {seed: record}
    for epochs in args.epochs:
        for lr in args.learning_rates:
            for seed in args.seeds:
                record = run_cell(args, epochs, lr, seed)
                if record:
                    results.setdefault((epochs, lr), {})[seed] = record
    if not results:
        print("No cell has finished yet.")
        return {}

    def validation(records) -> list[float]:
        return [r["validation"][spec.main] for r in records.values()]

    chosen = max(results, key=lambda k: statistics.mean(validation(results[k])))
    chosen_records = results[chosen]
    tests = {seed: test_scores(args, cell_dir(args, *chosen, seed), spec) for seed in chosen_records}
    test_key = f"test_{spec.main}"

    command = "OMP_NUM_THREADS=1 python scripts/bench_teacher.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    print(f"\nTeacher fine-tune of {args.model} on {args.task}: validation {spec.main} (%) of the kept epoch, "
          f"mean ± std over seeds; test only for the setting chosen on validation.\n")
    print(f"| epochs | learning rate | validation {spec.main} | kept epoch per seed | test {spec.main} |")
    print("|---|---|---|---|---|")
    for epochs in args.epochs:
        for lr in args.learning_rates:
            records = results.get((epochs, lr), {})
            kept = ", ".join(f"{r['chosen_epoch']:g}" for r in records.values()) or "-"
            test = _mean_std([tests[s][test_key] for s in tests]) if (epochs, lr) == chosen else "-"
            mark = " **chosen**" if (epochs, lr) == chosen else ""
            print(f"| {epochs:g} | {lr:g} | {_mean_std(validation(records))}{mark} | {kept} | {test} |")
    missing = [f"e{e:g}/lr{lr:g}/seed{s}" for e in args.epochs for lr in args.learning_rates for s in args.seeds
               if s not in results.get((e, lr), {})]
    if missing:
        print(f"\nNot run: {', '.join(missing)}")
    print(f"\nCommand: {command}")
    summary = {"task": args.task, "model": args.model, "metric": spec.main,
               "chosen": {"epochs": chosen[0], "learning_rate": chosen[1]},
               "cells": [{"epochs": e, "learning_rate": lr, "seed": s, "chosen_epoch": r["chosen_epoch"],
                          "validation": r["validation"], "validation_history": r.get("validation_history"),
                          **({"test": tests[s]} if (e, lr) == chosen else {})}
                         for (e, lr), records in results.items() for s, r in records.items()],
               "not_run": missing, "command": command}
    from bertlite.record import write_json

    write_json(os.path.join(args.output_dir, "results.json"), summary)
    return summary


if __name__ == "__main__":
    main()
