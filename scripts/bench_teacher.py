"""Benchmark: the teacher fine-tune's schedule (epochs x learning rate x seed) on the default task, chosen on validation.

Every cell is one `bertlite.distillation.teacher.finetuned_teacher` run (MiniLM on rotten_tomatoes by default): it is
scored on validation after every epoch and keeps its best epoch by the task's main metric. A setting (epochs, lr) is
scored by the mean over seeds of its kept epoch's validation score; the setting with the best mean is chosen, and only
its models are then scored on test, once. Other settings' test scores are never looked at.

    python scripts/bench_teacher.py                                   # the full grid: 3 x 3 x 3 fine-tunes (hours on a CPU)
    python scripts/bench_teacher.py --epochs 2 --learning-rates 1e-4 --seeds 42
    python scripts/bench_teacher.py --epochs 1 --learning-rates 1e-4,2e-4 --seeds 42 --max-train-examples 64   # smoke run
    python scripts/bench_teacher.py --report-only --merge docs/results/teacher-runs.json   # the cells finished so far
    python scripts/bench_teacher.py --report-only --final --merge docs/results/teacher-runs.json   # the choice and its test, once

Every finished cell is scored on validation (its kept epoch) and on test when it is trained, and its record is cached
in OUTPUT_DIR/cells.json, so the grid can be run in pieces (one process at a time, or several with their own
--output-dir) and over several machines: --merge adds the cells cached elsewhere (docs/results/teacher-runs.json holds
the ones measured so far). Test scores are stored but printed only for the setting chosen on validation, and only
with --final over a complete grid.
Results: docs/results/teacher.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import sys
import time

sys.path[:0] = [os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.path.dirname(os.path.abspath(__file__))]
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from bench_command import recorded_command  # noqa: E402


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
    parser.add_argument("--merge", action="append", default=[], metavar="JSON",
                        help="add the cells cached in another cells.json (e.g. docs/results/teacher-runs.json); repeatable")
    parser.add_argument("--report-only", action="store_true", help="train nothing: report the cells already finished")
    parser.add_argument("--final", action="store_true",
                        help="these epochs x learning rates x seeds are the whole choice: once all have run, print the chosen "
                             "setting's test score (read it once). Without it the leader is provisional and its test is withheld, "
                             "so a run over part of the grid (e.g. one row) never shows a test score")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for the command printed and stored with each cell
    return args


def cell_dir(args, epochs: float, lr: float, seed: int) -> str:
    subset = f"_n{args.max_train_examples}" if args.max_train_examples else ""
    # One folder name even for a model or task given as a path (which would otherwise escape --output-dir).
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{args.model}_{args.task}").strip("_")
    return os.path.join(args.output_dir, f"{name}{subset}", f"e{epochs:g}_lr{lr:g}_s{seed}")


def cell_key(args, epochs: float, lr: float, seed: int) -> str:
    return os.path.relpath(cell_dir(args, epochs, lr, seed), args.output_dir)


def run_cell(args, cells: dict, dsd, spec, epochs: float, lr: float, seed: int) -> dict | None:
    """The record of one fine-tune: its kept epoch, validation scores and test scores (trained and scored now unless
    cached). Both splits are scored once, when the cell is trained, so a later report needs no model folder."""
    from bertlite.distillation.teacher import finetuned_teacher, read_marker
    from bertlite.record import write_json

    key = cell_key(args, epochs, lr, seed)
    cached = cells.get(key)
    if cached and _settings_match(cached, args, epochs, lr, seed):
        return cached
    if args.report_only:
        return None
    folder = cell_dir(args, epochs, lr, seed)
    trained_before = bool(read_marker(folder))  # a finished folder is reused as is: no training time to report
    start = time.perf_counter()
    finetuned_teacher(args.model, args.task, folder, epochs=epochs, learning_rate=lr, batch_size=args.batch_size,
                      max_length=args.max_length, seed=seed, max_train_examples=args.max_train_examples)
    record = dict(read_marker(folder))
    if not trained_before:
        record["seconds"] = round(time.perf_counter() - start, 1)
    record["test"] = test_scores(args, folder, dsd, spec)
    record["command"] = command_line(args)
    cells[key] = record
    write_json(cells_path(args), cells)  # after every cell: an interrupted grid loses at most the cell in progress
    return record


def _settings_match(record: dict, args, epochs: float, lr: float, seed: int) -> bool:
    """A cached cell counts only if it was trained with this cell's settings (the key leaves out batch and length)."""
    settings = record.get("settings", {})
    wanted = {"epochs": epochs, "learning_rate": lr, "seed": seed, "batch_size": args.batch_size,
              "max_length": args.max_length, "max_train_examples": args.max_train_examples}
    return all(settings.get(k) == v for k, v in wanted.items())


def cells_path(args) -> str:
    return os.path.join(args.output_dir, "cells.json")


def load_cells(args) -> dict:
    cells = {}
    for path in [cells_path(args), *args.merge]:
        if os.path.isfile(path):
            with open(path) as f:
                cells.update({k: v for k, v in json.load(f).items() if k not in cells})
    return cells


def command_line(args) -> str:
    return recorded_command("bench_teacher.py", args.argv, prefix="OMP_NUM_THREADS=1")


def test_scores(args, folder: str, dsd, spec) -> dict:
    """The test metrics of one kept teacher (stored with its cell; printed only for the chosen setting)."""
    from bertlite.loading import load_model, load_tokenizer
    from bertlite.metrics import evaluate_splits

    model = load_model(folder, head="classifier", require_head=True).eval()
    return evaluate_splits(model, load_tokenizer(folder), dsd, spec, max_length=args.max_length)


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

    dsd, info = load_task(args.task, max_train_examples=args.max_train_examples)  # loaded once: every cell is scored on it
    spec = metric_spec(info)
    os.makedirs(args.output_dir, exist_ok=True)
    cells = load_cells(args)
    results = {}  # (epochs, lr) -> {seed: record}
    for epochs in args.epochs:
        for lr in args.learning_rates:
            for seed in args.seeds:
                record = run_cell(args, cells, dsd, spec, epochs, lr, seed)
                if record:
                    results.setdefault((epochs, lr), {})[seed] = record
    if not results:
        print("No cell has finished yet.")
        return {}

    def validation(records) -> list[float]:
        return [r["validation"][spec.main] for r in records.values()]

    chosen = max(results, key=lambda k: statistics.mean(validation(results[k])))
    chosen_records = results[chosen]
    missing = [f"e{e:g}/lr{lr:g}/seed{s}" for e in args.epochs for lr in args.learning_rates for s in args.seeds
               if s not in results.get((e, lr), {})]
    # A choice among a partial grid is provisional: its test score stays hidden until every cell has run, so the
    # test split is read once, for the final choice.
    final = args.final and not missing
    tests = {seed: record["test"] for seed, record in chosen_records.items()} if final else {}
    test_key = f"test_{spec.main}"

    command = command_line(args)
    print(f"\nTeacher fine-tune of {args.model} on {args.task}: validation {spec.main} (%) of the kept epoch, "
          f"mean ± std over seeds; test only for the setting chosen on validation.\n")
    print(f"| epochs | learning rate | validation {spec.main} | kept epoch per seed | test {spec.main} |")
    print("|---|---|---|---|---|")
    for epochs in args.epochs:
        for lr in args.learning_rates:
            records = results.get((epochs, lr), {})
            kept = ", ".join(f"{r['chosen_epoch']:g}" for r in records.values()) or "-"
            test = "-"
            if (epochs, lr) == chosen:
                test = _mean_std([tests[s][test_key] for s in tests]) if tests else (
                    "withheld (grid not complete)" if missing else "withheld (not --final)")
            mark = (" **chosen**" if tests else " (leading so far)") if (epochs, lr) == chosen else ""
            print(f"| {epochs:g} | {lr:g} | {_mean_std(validation(records))}{mark} | {kept} | {test} |")
    if missing:
        print(f"\nNot run: {', '.join(missing)}")
    print(f"\nCommand: {command}")
    summary = {"task": args.task, "model": args.model, "metric": spec.main,
               "chosen": {"epochs": chosen[0], "learning_rate": chosen[1]}, "final": final,
               "cells": [{"epochs": e, "learning_rate": lr, "seed": s, "chosen_epoch": r["chosen_epoch"],
                          "validation": r["validation"], "validation_history": r.get("validation_history"),
                          **({"test": tests[s]} if (e, lr) == chosen and tests else {})}
                         for (e, lr), records in results.items() for s, r in records.items()],
               "not_run": missing, "command": command}
    from bertlite.record import write_json

    write_json(os.path.join(args.output_dir, "results.json"), summary)
    return summary


if __name__ == "__main__":
    main()
