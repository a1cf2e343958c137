"""Benchmark of dynamic int8 quantization: speed, size on disk, accuracy. One run, ratios measured side by side.

    python scripts/bench_quantization.py                     # latency + size (quiet machine, OpenMP's default spinning)
    python scripts/bench_quantization.py --model DIR [DIR..]  # + accuracy of fine-tuned folders
    python scripts/bench_quantization.py --finetune-seeds 3   # + accuracy, MiniLM fine-tuned here
    python scripts/bench_quantization.py --quick              # smoke run (tiny shapes)

Latency is measured with `bertlite.evaluation.compare_latency` (models interleaved round by round), so a busy
neighbour on a shared machine slows every variant alike and the ratios stay meaningful; absolute times do not.
The OpenMP wait policy matters at batch 1: with `OMP_WAIT_POLICY=PASSIVE` (what bertlite's CLI sets, for training
on shared machines) worker threads sleep between the many small kernels of a batch-1 forward pass and wake up late,
which cost the compiled int8 graphs a quarter of their speed here. The header prints the policy the run used; set
it before starting Python (OpenMP reads it once).
Prints: speedup of each int8 variant over fp32 eager (bert-base shape and the packaged MiniLM, batch 8 x 128 and
1 x 128), int8 file size / fp32 size, and with --model or --finetune-seeds the accuracy drop and label agreement
on the rotten_tomatoes test split. Results: docs/results/quantization.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bertlite.evaluation import compare_latency, folder_size_mb  # noqa: E402
from bertlite.quantization import (  # noqa: E402
    available_backends,
    compare_with_fp32,
    compile_for_inference,
    compile_pt2e,
    quantize_model,
    save_quantized,
)

# name -> (backend, settings, compiled: False, "inductor" (torch.compile) or "pt2e" (compile_pt2e))
VARIANTS = {
    "torch per_tensor (eager)": ("torch", {"activations": "per_tensor"}, False),
    "torch per_token (eager)": ("torch", {"activations": "per_token"}, False),
    "torchao (eager)": ("torchao", {}, False),
    "torchao + torch.compile": ("torchao", {}, "inductor"),
    "PT2E + inductor (torch int8 weights)": ("torch", {"activations": "per_tensor"}, "pt2e"),
    "onnxruntime (fused graph)": ("onnxruntime", {}, False),
}


def bert_base_shape(quick: bool):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(num_labels=2) if not quick else BertConfig(hidden_size=128, num_hidden_layers=2,
                                                                    num_attention_heads=2, intermediate_size=512, num_labels=2)
    return BertForSequenceClassification(config).eval()


def packaged_minilm():
    from transformers import AutoModelForSequenceClassification

    from bertlite.loading import resolve_model_name

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AutoModelForSequenceClassification.from_pretrained(resolve_model_name("minilm"), num_labels=2).eval()


def build_variants(fp32, names, shapes=()):
    models = {"fp32 (eager)": fp32}
    for name in names:
        backend, settings, compiled = VARIANTS[name]
        int8 = quantize_model(fp32, backend=backend, **settings)
        if compiled == "pt2e":
            started = time.perf_counter()
            models[name] = compile_pt2e(int8, warmup=shapes)
            print(f"  (PT2E graphs for {len(shapes)} shapes built in {time.perf_counter() - started:.0f} s)", file=sys.stderr)
        else:
            models[name] = compile_for_inference(int8) if compiled else int8
    return models


def latency_table(title, fp32, names, shapes, rounds):
    print(f"\n## Latency: {title} ({torch.get_num_threads()} threads), speedup over fp32 eager")
    models = build_variants(fp32, names, shapes)
    print(f"| variant | " + " | ".join(f"batch {b} x {s}" for b, s in shapes) + " |")
    print("|---|" + "---|" * len(shapes))
    results = {}
    for batch, seq in shapes:
        start = time.perf_counter()
        results[(batch, seq)] = compare_latency(models, batch_size=batch, seq_len=seq, rounds=rounds, repeats=2)
        print(f"  (measured batch {batch} x {seq} in {time.perf_counter() - start:.0f} s, compiles included)", file=sys.stderr)
    for name in models:
        cells = []
        for shape in shapes:
            ms = results[shape][name]
            cells.append(f"{ms:.0f} ms" + ("" if name.startswith("fp32") else f" ({results[shape]['fp32 (eager)'] / ms:.2f}x)"))
        print(f"| {name} | " + " | ".join(cells) + " |")


def size_table(title, fp32, backends):
    print(f"\n## Size on disk: {title}")
    with tempfile.TemporaryDirectory() as tmp:
        fp32.save_pretrained(os.path.join(tmp, "fp32"))
        base = folder_size_mb(os.path.join(tmp, "fp32"))
        print(f"| variant | MB | ratio |\n|---|---|---|\n| fp32 safetensors | {base:.1f} | 1.00 |")
        for backend in backends:
            for embeddings in (False, True):
                folder = os.path.join(tmp, f"{backend}-{embeddings}")
                save_quantized(quantize_model(fp32, backend=backend, quantize_embeddings=embeddings), folder)
                size = folder_size_mb(folder)
                label = f"{backend} int8" + (" + int8 embeddings" if embeddings else "")
                print(f"| {label} | {size:.1f} | {size / base:.2f} |")


def brief_finetune(seed: int, tokenizer, train, steps_examples: int = 480):
    """The packaged MiniLM fine-tuned for one short pass (30 steps of 16): a stand-in for a real fine-tuned model."""
    model = packaged_minilm()
    torch.manual_seed(seed)
    part = train.shuffle(seed=seed).select(range(steps_examples))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    for start in range(0, steps_examples, 16):
        rows = part[start:start + 16]
        enc = tokenizer(rows["text"], truncation=True, max_length=64, padding=True, return_tensors="pt")
        model(**enc, labels=torch.tensor(rows["label"])).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval()


def accuracy_table(models_and_names, tokenizer, test, backends):
    print(f"\n## Accuracy on rotten_tomatoes test ({len(test)} sentences): fp32 -> int8")
    rows = {}
    for label, fp32 in models_and_names:
        for name in backends:
            backend, settings, _ = VARIANTS[name]
            int8 = quantize_model(fp32, backend=backend, **settings)
            if VARIANTS[name][2] == "pt2e":  # its quantized graph before inductor: the same numbers within ~1e-6
                int8 = compile_pt2e(int8, compile=False)
            report = compare_with_fp32(fp32, int8, tokenizer, test, warn=False)
            rows.setdefault(name, []).append(report)
            print(f"  {label} / {name}: fp32 {100 * report.fp32_accuracy:.2f}%, int8 {100 * report.int8_accuracy:.2f}%, "
                  f"agreement {100 * report.label_agreement:.2f}%", file=sys.stderr)
    n = len(models_and_names)
    print(f"| variant | fp32 acc | int8 acc | drop (pt) | label agreement | models |\n|---|---|---|---|---|---|")

    def stat(values):
        return f"{statistics.mean(values):.2f}" + (f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else "")

    for name, reports in rows.items():
        print(f"| {name} | {stat([100 * r.fp32_accuracy for r in reports])} | {stat([100 * r.int8_accuracy for r in reports])} "
              f"| {stat([r.accuracy_drop_points for r in reports])} | {stat([100 * r.label_agreement for r in reports])} | {n} |")


@torch.no_grad()
def profile_table(title, fp32, shape, passes: int = 3, rows: int = 6) -> None:
    """Share of the default int8 model's CPU time per operator: what int8 speeds up (its Linear kernels) against
    the fp32 work it leaves (attention, GELU, adds, LayerNorm), which bounds the eager speedup."""
    from torch.profiler import profile

    backend, settings, _ = VARIANTS["torch per_tensor (eager)"]
    model = quantize_model(fp32, backend=backend, **settings).eval()
    batch, seq = shape
    ids = torch.randint(1000, fp32.config.vocab_size, (batch, seq), generator=torch.Generator().manual_seed(0))
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    model(**inputs)
    with profile() as prof:
        for _ in range(passes):
            model(**inputs)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1
    print(f"\n## Where the default int8 model's time goes ({title}, batch {batch} x {seq}, {passes} passes, torch.profiler)")
    print("| operator | share of CPU time |\n|---|---|")
    for e in events[:rows]:
        print(f"| {e.key} | {100 * e.self_cpu_time_total / total:.1f}% |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: small shapes, no compile, few rounds")
    parser.add_argument("--model", nargs="+", default=[], help="fine-tuned fp32 folder(s) for the accuracy table")
    parser.add_argument("--finetune-seeds", type=int, default=0, help="briefly fine-tune MiniLM with this many seeds for the accuracy table")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant (20-40 s per shape)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--profile", action="store_true",
                        help="also print where the default eager int8 model spends its time (bert-base shape, batch 8 x 128)")
    parser.add_argument("--variants", default=None, metavar="WORDS",
                        help="only the variants whose name contains one of these comma-separated words (e.g. 'PT2E,default')")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    have = set(available_backends())
    usable = [n for n, (backend, _, _) in VARIANTS.items() if backend in have]
    if args.variants:
        words = [w.strip().lower() for w in args.variants.split(",") if w.strip()]
        usable = [n for n in usable if any(w in n.lower() for w in words)]
    names = [n for n in usable if not (VARIANTS[n][2] and (args.no_compile or args.quick))]  # latency: compiles
    # accuracy: PT2E's quantized graph runs uncompiled (same numbers), torch.compile'd torchao is left out
    accuracy_names = [n for n in usable if VARIANTS[n][2] in (False, "pt2e")]
    missing = sorted({VARIANTS[n][0] for n in VARIANTS} - have)
    if missing:
        print(f"(backends not installed, skipped: {', '.join(missing)})")
    policy = os.environ.get("OMP_WAIT_POLICY") or "unset (OpenMP default: spin, then sleep)"
    print(f"# bertlite int8 benchmark — torch {torch.__version__}, {os.cpu_count()} CPUs, OMP_WAIT_POLICY {policy}")
    shapes = [(8, 32), (1, 32)] if args.quick else [(8, 128), (1, 128)]
    rounds = 2 if args.quick else 5
    bert_base = bert_base_shape(args.quick)
    if not args.skip_latency:
        latency_table("bert-base shape, random weights" if not args.quick else "small BERT shape (quick)", bert_base, names, shapes, rounds)
    size_table("bert-base shape" if not args.quick else "small BERT shape (quick)", bert_base,
               [b for b in ("torch", "onnxruntime") if b in have])
    if args.profile:
        profile_table("bert-base shape" if not args.quick else "small BERT shape (quick)", bert_base, shapes[0])
    del bert_base
    if not args.quick:
        minilm = packaged_minilm()
        if not args.skip_latency:
            latency_table("packaged all-MiniLM-L6-v2", minilm, names, shapes, rounds)
        size_table("packaged all-MiniLM-L6-v2", minilm, [b for b in ("torch", "onnxruntime") if b in have])

    if args.model or args.finetune_seeds:
        from transformers import AutoModelForSequenceClassification

        from bertlite.data import load_task
        from bertlite.loading import load_tokenizer

        dsd, _ = load_task("rotten_tomatoes")
        test = dsd["test"].shuffle(seed=0).select(range(64)) if args.quick else dsd["test"]  # the split is label-sorted
        tokenizer = load_tokenizer(args.model[0] if args.model else "minilm")
        fine_tuned = [(path, AutoModelForSequenceClassification.from_pretrained(path).eval()) for path in args.model]
        fine_tuned += [(f"MiniLM seed {s}", brief_finetune(s, tokenizer, dsd["train"], 64 if args.quick else 480))
                       for s in range(args.finetune_seeds)]
        accuracy_table(fine_tuned, tokenizer, test, accuracy_names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
