"""Benchmark: weight-level pruning methods compared on the same task, before and after the same short recovery.

The fine-tuned MiniLM teacher (rotten_tomatoes) is pruned to 50/80/90% sparsity by magnitude, Lottery Ticket,
Optimal Brain Damage and SynFlow (global scope, embeddings and classifier dense); test accuracy is measured right
after pruning and after a short recovery fine-tuning (the same number of steps for every method), over several seeds.
It also measures, side by side in one process, the latency and file size of the dense and a 90%-sparse model:
unstructured zeros are stored and multiplied like any other weight.

    python scripts/bench_sparse.py                    # full run (hours on a CPU)
    python scripts/bench_sparse.py --quick            # smoke run on small subsets (~10 min on a shared 2-core CPU)
    python scripts/bench_sparse.py --model DIR        # a sequence classifier already fine-tuned on rotten_tomatoes
    python scripts/bench_sparse.py --merge A B C       # one table from runs split by seed (--seeds 0 --output-dir A, ...)

Lottery Ticket differs in kind: its "pruned" accuracy is already that of a retrained ticket (it trains between
rounds: one run per sparsity plus the dense run, each as long as the recovery), and one iterative run visits the
sparsities in order. The table says how many training runs each number includes. Results:
docs/results/weight_pruning.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

TASK = "rotten_tomatoes"
METHOD_ORDER = ("magnitude", "lth", "obd", "synflow")
DETERMINISTIC = {"magnitude", "synflow"}  # masks depend on the weights alone (no data, no randomness)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="folder of a classifier fine-tuned on rotten_tomatoes "
                        "(default: MiniLM fine-tuned by bertlite.distillation.teacher.finetuned_teacher, cached in the output folder)")
    parser.add_argument("--output-dir", default="runs/bench_sparse")
    parser.add_argument("--methods", default="magnitude,lth,obd,synflow")
    parser.add_argument("--sparsities", default="0.5,0.8,0.9")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--scope", default="global", choices=["global", "layer"])
    parser.add_argument("--recovery-steps", type=int, default=200,
                        help="optimizer steps of every recovery and LTH round; 0: no recovery (pruning alone, no lth)")
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--synflow-iterations", type=int, default=100)
    parser.add_argument("--obd-samples", type=int, default=256, help="examples of the per-sample empirical Fisher")
    parser.add_argument("--teacher-epochs", type=float, default=2.0, help="fine-tuning epochs of the teacher when none is given")
    parser.add_argument("--recovery", default="distill", choices=["distill", "finetune"],
                        help="recovery by distillation from the dense teacher, or by fine-tuning on the labels")
    parser.add_argument("--max-train-examples", type=int, default=None)
    parser.add_argument("--max-eval-examples", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="smoke run: small subsets, few steps, one seed")
    parser.add_argument("--merge", nargs="+", metavar="DIR", default=None,
                        help="no run: print one table from the results.json of runs split by seed (same model and settings)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds = "0"
        args.recovery_steps = 3
        args.batch_size = 16
        args.synflow_iterations = 10
        args.obd_samples = 16
        args.teacher_epochs = 3.0
        args.max_train_examples = args.max_train_examples or 256
        args.max_eval_examples = args.max_eval_examples or 100
        args.max_length = 64
        args.output_dir = args.output_dir.rstrip("/") + "_quick"
    return args


def teacher_folder(args) -> str:
    """The fine-tuned classifier to prune: --model, or MiniLM fine-tuned on the task by bertlite (cached)."""
    if args.model:
        return args.model
    from bertlite.distillation.teacher import finetuned_teacher

    return finetuned_teacher("minilm", TASK, os.path.join(args.output_dir, "teacher"), epochs=args.teacher_epochs,
                             max_train_examples=args.max_train_examples, max_length=args.max_length)


def run(args) -> dict:
    from transformers import set_seed

    from bertlite.data import load_task
    from bertlite.evaluation import accuracy
    from bertlite.loading import load_tokenizer
    from bertlite.pruning.unstructured import copy_model, lottery_ticket, prune_weights
    from bertlite.pruning.unstructured.loading import fisher_batches
    from bertlite.pruning.unstructured.loading import load_model as load_pruning_model
    from bertlite.pruning.recovery import task_train_fn

    start = time.time()
    folder = teacher_folder(args)
    tokenizer = load_tokenizer(folder)
    dsd, _ = load_task(TASK, max_train_examples=args.max_train_examples, max_eval_examples=args.max_eval_examples)
    test = dsd["test"]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    sparsities = [float(s) for s in args.sparsities.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    recovering = args.recovery_steps > 0
    if "lth" in methods and not recovering:
        raise SystemExit("lth trains between rounds: give --recovery-steps > 0 (its round length) or leave lth out.")

    # Pruning scores (SynFlow's iterations, OBD's per-sample gradients) and recovery run on the GPU when there is
    # one; the latency/size comparison below stays on the CPU.
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"

    def load_model(path):
        return load_pruning_model(path).to(device)

    def evaluate(model) -> float:
        return accuracy(model, tokenizer, test, max_length=args.max_length, desc=False)

    teacher = load_model(folder).eval()
    dense = evaluate(teacher)
    print(f"dense teacher: test accuracy {dense:.4f} on {len(test)} examples")
    rows = []

    def record(method, sparsity, seed, model, recover, training_runs, collapsed=0):
        row = dict(method=method, sparsity=sparsity, seed=seed, pruned=evaluate(model), recovered=None,
                   training_runs=training_runs, collapsed_layers=collapsed)
        if recover is not None:
            recover(model)
            row["recovered"] = evaluate(model)
        rows.append(row)
        after = f" -> recovered {row['recovered']:.4f}" if row["recovered"] is not None else ""
        print(f"  {method} seed {seed} sparsity {sparsity:.0%}: pruned {row['pruned']:.4f}{after}")

    for seed in seeds:
        # LTH's rounds retrain on the labels (that is the method); recovery is the same for every method.
        settings = dict(max_steps=args.recovery_steps, learning_rate=args.learning_rate, batch_size=args.batch_size,
                        max_length=args.max_length, seed=seed, logging_steps=10**9)
        retrain = task_train_fn(tokenizer, dsd["train"], args.output_dir, **settings) if recovering else None
        recover = task_train_fn(tokenizer, dsd["train"], args.output_dir, **settings,
                                teacher=teacher if args.recovery == "distill" else None) if recovering else None
        for method in methods:
            if method in DETERMINISTIC and not recovering and seed != seeds[0]:
                continue  # data-free and seed-free: another seed would repeat the same computation
            if method == "lth":
                set_seed(seed)
                lottery_ticket(load_model(folder), sparsities[-1], retrain, schedule=sparsities, scope=args.scope,
                               on_ticket=lambda ticket, s, _seed=seed: record(
                                   "lth", s, _seed, copy_model(ticket), recover, sparsities.index(s) + 2))
                continue
            for sparsity in sparsities:
                model = load_model(folder)
                set_seed(seed)
                data = fisher_batches(tokenizer, dsd["train"], args.obd_samples, 1, args.max_length, seed) if method == "obd" else None
                iterations = args.synflow_iterations if method == "synflow" else 1
                # A collapsed layer is a result to report, not a reason to stop the benchmark.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    report = prune_weights(model, method, sparsity, scope=args.scope, iterations=iterations, data=data,
                                           on_collapse="warn")
                record(method, sparsity, seed, model, recover, 0, len(report.collapsed))
    cost = measure_cost(folder, max(sparsities), args)
    where = torch.cuda.get_device_name(0) if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    return dict(dense=dense, rows=rows, cost=cost, seconds=time.time() - start, test_examples=len(test), device=where,
                settings={k: v for k, v in vars(args).items()}, model=folder)


def measure_cost(folder: str, sparsity: float, args) -> dict:
    """Latency (interleaved, one process) and safetensors size of the dense model and a magnitude-pruned copy."""
    from bertlite.evaluation import compare_latency, folder_size_mb
    from bertlite.pruning.unstructured import prune_weights, remove_masks
    from bertlite.pruning.unstructured.loading import load_model

    dense = load_model(folder).eval()
    sparse = load_model(folder).eval()
    prune_weights(sparse, "magnitude", sparsity, scope=args.scope)
    remove_masks(sparse)
    with tempfile.TemporaryDirectory() as tmp:
        sparse.save_pretrained(tmp)
        sizes = {"dense_mb": folder_size_mb(folder), "sparse_mb": folder_size_mb(tmp)}
    rounds = 2 if args.quick else 5
    latency = compare_latency({"dense": dense, "sparse": sparse}, batch_size=8, seq_len=128, rounds=rounds)
    return dict(sparsity=sparsity, **sizes, dense_ms=latency["dense"], sparse_ms=latency["sparse"],
                latency_ratio=latency["sparse"] / latency["dense"])


def _mean_spread(values: list) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def table(result: dict) -> str:
    rows, settings = result["rows"], result["settings"]
    seeds = sorted({r["seed"] for r in rows})
    spread = "mean ± std over seeds " + ",".join(map(str, seeds)) if len(seeds) > 1 else f"one seed ({seeds[0]}): no spread"
    recovery = (f"{settings['recovery']} for {settings['recovery_steps']} steps of batch {settings['batch_size']}"
                if settings["recovery_steps"] > 0 else "none")
    lines = [f"rotten_tomatoes test accuracy ({result['test_examples']} examples), {spread}; recovery: {recovery}",
             f"dense fine-tuned teacher: {result['dense']:.4f}",
             f"{'method':<10} {'sparsity':>8} {'pruned':>17} {'recovered':>17} {'seeds':>5} {'collapsed layers':>16} "
             f"{'training runs in pruned':>23}"]
    order = {m: i for i, m in enumerate(METHOD_ORDER)}
    keys = sorted({(r["method"], r["sparsity"]) for r in rows}, key=lambda k: (order.get(k[0], len(order)), k[1]))
    for method, sparsity in keys:
        group = [r for r in rows if r["method"] == method and r["sparsity"] == sparsity]
        lines.append(f"{method:<10} {sparsity:>8.0%} {_mean_spread([r['pruned'] for r in group]):>17} "
                     f"{_mean_spread([r['recovered'] for r in group]):>17} {len(group):>5} "
                     f"{max(r.get('collapsed_layers', 0) for r in group):>16} {group[0]['training_runs']:>23}")
    if any(r["method"] in DETERMINISTIC for r in rows) and settings["recovery_steps"] == 0 and len(seeds) > 1:
        lines.append("magnitude and synflow masks use neither data nor randomness: one run stands for every seed")
    cost = result["cost"]
    lines.append(f"cost of {cost['sparsity']:.0%} unstructured sparsity (magnitude): safetensors {cost['dense_mb']:.1f} MB dense vs "
                 f"{cost['sparse_mb']:.1f} MB sparse; CPU latency (batch 8 x 128 tokens) {cost['dense_ms']:.1f} ms dense vs "
                 f"{cost['sparse_ms']:.1f} ms sparse (ratio {cost['latency_ratio']:.2f})")
    merged = result.get("merged_from")
    lines.append(f"total time {result['seconds'] / 60:.1f} min" + (f" (the longest of {len(merged)} runs split by seed, run side by side)" if merged else ""))
    if "device" in result:
        lines.append(f"training and evaluation ran on: {result['device']}")
    return "\n".join(lines)


def merge(folders: list[str]) -> dict:
    """One result from runs of the same benchmark that differ only in their seeds (run side by side)."""
    parts = []
    for folder in folders:
        with open(os.path.join(folder, "results.json")) as f:
            parts.append(json.load(f))
    ignore = {"seeds", "output_dir", "merge"}
    first = {k: v for k, v in parts[0]["settings"].items() if k not in ignore}
    for folder, part in zip(folders, parts):
        if {k: v for k, v in part["settings"].items() if k not in ignore} != first or part["model"] != parts[0]["model"]:
            raise SystemExit(f"{folder}: other settings or model than {folders[0]}; only runs split by seed can be merged")
    seeds = sorted({r["seed"] for part in parts for r in part["rows"]})
    devices = list(dict.fromkeys(p["device"] for p in parts))  # the runs may have had different thread counts
    return dict(parts[0], rows=[r for part in parts for r in part["rows"]], seconds=max(p["seconds"] for p in parts),
                settings=dict(parts[0]["settings"], seeds=",".join(map(str, seeds))), merged_from=folders,
                device=" / ".join(devices))


def main(argv=None) -> int:
    args = parse_args(argv)
    os.makedirs(args.output_dir, exist_ok=True)
    result = merge(args.merge) if args.merge else run(args)
    text = table(result)
    print()
    print(text)
    with open(os.path.join(args.output_dir, "results.json"), "w") as f:
        json.dump(result, f, indent=2)
    with open(os.path.join(args.output_dir, "results.txt"), "w") as f:
        f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
