"""Benchmark structured pruning. Prints ratios measured side by side in one process.

Part 1 (latency): a bert-base-shaped classifier (random weights, 12 layers x 12 heads, FFN 3072) against the same
model with 50% of heads and 50% of FFN neurons removed (6 heads and 1536 neurons left in every layer), CPU,
batch 8 x 128 and 1 x 128, measured interleaved with `bertlite.evaluation.compare_latency`.

Part 2 (accuracy): on rotten_tomatoes (packaged, offline), the fine-tuned MiniLM teacher, the teacher with 40% of
heads and FFN neurons removed (taylor importance, global ranking), and that model after recovery distillation from
the teacher -- exactly what `bertlite prune --heads 0.4 --ffn 0.4 --recover` does -- over several seeds.

    python scripts/bench_structured.py                 # both parts
    python scripts/bench_structured.py --part latency
    python scripts/bench_structured.py --quick         # smoke run: small shapes and data, 1 seed (no claims)

Results: docs/results/structured_pruning.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def latency_part(quick: bool) -> dict:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from bertlite.evaluation import compare_latency, count_parameters
    from bertlite.pruning.structured import prune

    layers = 2 if quick else 12
    config = BertConfig(num_hidden_layers=layers, num_labels=2)  # bert-base shape: hidden 768, 12 heads, FFN 3072
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).eval()
    pruned = prune(model, heads=0.5, ffn=0.5, criterion="magnitude", scope="layer", progress=False).model.eval()
    print(f"\n== Latency: bert-base shape ({layers} layers), 50% heads + 50% FFN removed, random weights ==")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, attention: {model.config._attn_implementation}")
    print(f"heads per layer {pruned.config.layer_num_attention_heads}, FFN per layer {pruned.config.layer_intermediate_sizes}")
    print(f"parameters: {count_parameters(model):,} -> {count_parameters(pruned):,} "
          f"({count_parameters(pruned) / count_parameters(model):.1%}; embeddings are not pruned)")
    results = {"layers": layers, "threads": torch.get_num_threads(), "parameters": [count_parameters(model), count_parameters(pruned)]}
    rounds, repeats = (2, 1) if quick else (5, 3)
    for batch in (8, 1):
        ms = compare_latency({"unpruned": model, "pruned": pruned}, batch_size=batch, seq_len=128, rounds=rounds, repeats=repeats)
        ratio = ms["unpruned"] / ms["pruned"]
        results[f"b{batch}"] = {**ms, "speedup": ratio}
        print(f"batch {batch} x 128: unpruned {ms['unpruned']:.1f} ms, pruned {ms['pruned']:.1f} ms -> {ratio:.2f}x faster "
              f"(median of {rounds} interleaved rounds x {repeats} runs)")
    return results


def accuracy_part(quick: bool, seeds: list[int], share: float, epochs: float, output_dir: str, teacher: str) -> dict:
    from bertlite.cli.prune import PruneArguments
    from bertlite.record import CompressionConfig
    from bertlite.pruning.structured.pipeline import run_structured
    from bertlite.distillation.teacher import finetuned_teacher

    limits = {"max_train_examples": 256, "max_eval_examples": 128} if quick else {}
    print(f"\n== Accuracy: rotten_tomatoes, {share:.0%} of heads and FFN removed (taylor, global), recovery "
          f"{epochs:g} epochs, seeds {seeds}{' [QUICK: subsets, no claims]' if quick else ''} ==")
    teacher_path = finetuned_teacher(teacher, "rotten_tomatoes", os.path.join(output_dir, "teacher"),
                                     epochs=1.0 if quick else 2.0, max_train_examples=limits.get("max_train_examples"))
    runs = []
    for seed in seeds:
        start = time.time()
        out = os.path.join(output_dir, f"pruned-{int(share * 100)}-seed{seed}")
        args = PruneArguments(model=teacher_path, task="rotten_tomatoes", heads=share, ffn=share, criterion="taylor",
                              scope="global", recover=True, epochs=epochs, seed=seed, output_dir=out, **limits)
        run_structured(args)
        metrics = CompressionConfig.from_pretrained(out).metrics["structured_pruning"]
        runs.append(metrics)
        print(f"seed {seed}: teacher {metrics['accuracy_before']:.4f}, pruned {metrics['accuracy_pruned']:.4f}, "
              f"recovered {metrics['accuracy_recovered']:.4f} ({time.time() - start:.0f} s)")

    def summary(key):
        values = [r[key] for r in runs]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return statistics.mean(values), spread

    teacher_acc = runs[0]["accuracy_before"]  # the same teacher and test split in every run
    pruned_mean, pruned_sd = summary("accuracy_pruned")
    rec_mean, rec_sd = summary("accuracy_recovered")
    print(f"\nteacher test accuracy        {teacher_acc:.4f}")
    print(f"after pruning {share:.0%} (no training) {pruned_mean:.4f} ± {pruned_sd:.4f}")
    print(f"after recovery distillation  {rec_mean:.4f} ± {rec_sd:.4f}  "
          f"(gap to teacher {100 * (teacher_acc - rec_mean):+.2f} points; mean ± sd over {len(runs)} seeds)")
    print(f"parameters {runs[0]['parameters_before']:,} -> {runs[0]['parameters_after']:,}")
    return {"teacher": teacher_acc, "pruned": [pruned_mean, pruned_sd], "recovered": [rec_mean, rec_sd], "runs": runs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["latency", "accuracy", "all"], default="all")
    parser.add_argument("--quick", action="store_true", help="Smoke run: 2-layer latency model, data subsets, 1 seed.")
    parser.add_argument("--seeds", default="1,2,3", help="Comma-separated seeds for the accuracy part (>= 3 for claims).")
    parser.add_argument("--share", type=float, default=0.4, help="Share of heads and of FFN neurons removed in the accuracy part.")
    parser.add_argument("--epochs", type=float, default=1.0, help="Recovery distillation epochs (1 keeps a CPU run near 20 min per seed).")
    parser.add_argument("--teacher", default="minilm", help="Teacher alias/folder; fine-tuned on rotten_tomatoes first when it has no task head.")
    parser.add_argument("--output_dir", default="runs/bench_structured")
    parser.add_argument("--json", default=None, help="Also write the results to this JSON file.")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")][: 1 if args.quick else None]
    results = {}
    if args.part in ("latency", "all"):
        results["latency"] = latency_part(args.quick)
    if args.part in ("accuracy", "all"):
        results["accuracy"] = accuracy_part(args.quick, seeds, args.share, args.epochs, args.output_dir, args.teacher)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
