"""What each part of the TinyBERT recipe buys: rotten_tomatoes test accuracy of 3- and 2-layer students of the
packaged MiniLM, distilled four ways, over several seeds, in one process.

    task      task distillation alone (student = every other teacher layer)        bertlite distill
    +aug      the same, training on the original + augmented examples               bertlite augment; distill --augmented
    +general  starting from a generally distilled student (+ the teacher's head)    distill --general; distill --student
    +both     both

One fine-tuned teacher, one augmented dataset and one general student per size serve every seed (they are made
once, as a user would); the seeds vary task distillation (student head, data order, dropout). All steps go through
the same functions as the `bertlite` commands. The setting is a small task: by default the first --train_examples
examples of the training split (the fixed stratified split, so the labels stay balanced); test is the full test split.

    python scripts/bench_tinybert_recipe.py --quick      # smoke run, a few minutes on 2 cores
    python scripts/bench_tinybert_recipe.py              # the full run (about three hours on 2 cores)
    python scripts/bench_tinybert_recipe.py --general_teacher pretrained --general_steps 150 --aug_epochs 1 --general_head fresh
        # the first defaults: a short general distillation from the pre-trained MiniLM (TinyBERT's teacher), and
        # one epoch on the augmented data

Interrupted? Run the same command again: the teacher, the general students and every finished task distillation
(work_dir/runs.jsonl) are reused when their settings are unchanged. Results:
docs/results/augmentation_and_general_distillation.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spin-waiting OpenMP threads slow shared CPUs down badly
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

VARIANTS = ("task", "+aug", "+general", "+both")
GOAL = 0.97  # of the teacher's test accuracy, for the 3-layer student with both


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="Smoke run: tiny data, few steps, one seed (numbers mean nothing).")
    p.add_argument("--seeds", default="3", help="Number of seeds (0..n-1) or a comma-separated list: '3' is seeds 0, 1, 2; '2,' is seed 2 alone (default 3).")
    p.add_argument("--work_dir", default="bench-out/tinybert", help="Folder for the teacher, augmented data, general students and runs.")
    p.add_argument("--layers", default="3,2", help="Student depths (default 3,2).")
    p.add_argument("--train_examples", type=int, default=1000, help="Training examples of the small task (0: all 6824).")
    p.add_argument("--max_length", type=int, default=64, help="Tokens per example (rotten_tomatoes sentences are ~26 tokens).")
    p.add_argument("--teacher_epochs", type=float, default=3.0)
    p.add_argument("--epochs", type=float, default=3.0, help="Task-distillation epochs on the original data.")
    p.add_argument("--aug_epochs", type=float, default=3.0,
                   help="Task-distillation epochs on original + augmented data (1 + N times larger). Default: as many as "
                        "on the original data, as TinyBERT does; 1 was the first default.")
    p.add_argument("--learning_rate", type=float, default=1e-4)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--hard_label_weight", type=float, default=0.0,
                   help="Hard-label loss weight for every variant. Default 0 (soft targets only, as TinyBERT's prediction "
                        "layer): batches with augmented examples skip the hard loss anyway, so 0 keeps the variants comparable.")
    p.add_argument("--num_variants", type=int, default=4, help="Augmentation: variants per example.")
    p.add_argument("--probability", type=float, default=0.4, help="Augmentation: word replacement probability.")
    p.add_argument("--top_k", type=int, default=15, help="Augmentation: candidates per word.")
    p.add_argument("--general_steps", type=int, default=600, help="General distillation steps per student size (150 was the first default).")
    p.add_argument("--general_batch_size", type=int, default=32)
    p.add_argument("--general_max_length", type=int, default=64)
    p.add_argument("--general_learning_rate", type=float, default=1e-4)
    p.add_argument("--general_corpus", default="movie-reviews")
    p.add_argument("--general_teacher", default="finetuned", choices=("pretrained", "finetuned"),
                   help="Teacher of the general distillation: the fine-tuned task teacher (default: in-domain "
                        "intermediate-layer distillation on the unlabeled corpus; the student starts from the fine-tuned "
                        "layers) or the pre-trained MiniLM (TinyBERT's setting, the first default; the student starts "
                        "from its layers).")
    p.add_argument("--general_head", default="teacher", choices=("teacher", "fresh"),
                   help="Pooler and classifier of the general student: copied from the fine-tuned teacher (the "
                        "`bertlite distill --student` default) or random (`--student_head fresh`).")
    args = p.parse_args(argv)
    args.eval_examples = None  # the full test split
    if args.quick:
        args.eval_examples = 100
        args.train_examples, args.teacher_epochs, args.epochs, args.aug_epochs = 48, 1.0, 1.0, 1.0
        args.num_variants, args.general_steps, args.general_batch_size = 2, 3, 8
        args.seeds = "1" if args.seeds == "3" else args.seeds
        args.work_dir = args.work_dir + "-quick"
    args.seed_list = ([int(s) for s in args.seeds.split(",") if s.strip()] if "," in args.seeds
                      else list(range(int(args.seeds))))
    args.layer_list = [int(x) for x in args.layers.split(",")]
    return args


def quiet_config(output_dir, seed, **values):
    from bertlite.distillation.config import EARLIER_DEFAULT_LOSS, DistillationConfig

    # The loss this benchmark's results were measured with, so that the script keeps reproducing them; a caller's
    # values win (both callers set the hard-label weight).
    values = {"logging_steps": 50, **EARLIER_DEFAULT_LOSS, **values}
    return DistillationConfig(output_dir=output_dir, seed=seed, report_to="none", save_strategy="no", eval_strategy="no",
                              disable_tqdm=True, save_on_interrupt=False, warmup_steps=0.1, **values)


def make_teacher(args, log):
    from bertlite.distillation.teacher import finetuned_teacher

    return finetuned_teacher("minilm", "rotten_tomatoes", os.path.join(args.work_dir, "teacher"), epochs=args.teacher_epochs,
                             max_length=args.max_length, seed=0, max_train_examples=args.train_examples or None, log=log)


def make_augmented(args, log) -> dict:
    from bertlite.augmentation import run_augmentation
    from bertlite.cli.augment import AugmentArguments

    return run_augmentation(AugmentArguments(task="rotten_tomatoes", output_dir=os.path.join(args.work_dir, "augmented"),
                                             num_variants=args.num_variants, probability=args.probability, top_k=args.top_k,
                                             seed=0, max_examples=args.train_examples or None, overwrite=True), log=log)


SETTINGS = ("train_examples", "max_length", "teacher_epochs", "epochs", "aug_epochs", "learning_rate", "batch_size",
            "hard_label_weight", "num_variants", "probability", "top_k", "general_steps", "general_batch_size",
            "general_max_length", "general_learning_rate", "general_corpus", "eval_examples")


AUGMENTATION_SETTINGS = ("aug_epochs", "num_variants", "probability", "top_k")
GENERAL_SETTINGS = ("general_steps", "general_batch_size", "general_max_length", "general_learning_rate", "general_corpus")
# Settings a result does not depend on: changing them (say, longer general distillation) keeps the other rows.
IRRELEVANT = {"task": AUGMENTATION_SETTINGS + GENERAL_SETTINGS, "+aug": ("epochs",) + GENERAL_SETTINGS,
              "+general": AUGMENTATION_SETTINGS, "+both": ("epochs",),
              "general student": ("epochs",) + AUGMENTATION_SETTINGS}


# The values irrelevant settings are recorded at: the benchmark's first defaults, which keeps the keys of rows
# written when every setting was recorded.
KEY_REFERENCE = {"epochs": 3.0, "aug_epochs": 1.0, "num_variants": 4, "probability": 0.4, "top_k": 15, "general_steps": 150,
                 "general_batch_size": 32, "general_max_length": 64, "general_learning_rate": 1e-4,
                 "general_corpus": "movie-reviews"}


def settings_key(args, variant: str) -> str:
    """Identifies the settings that shape a result, so an interrupted benchmark resumes only with the same ones."""
    values = {k: KEY_REFERENCE[k] if k in IRRELEVANT[variant] else getattr(args, k) for k in SETTINGS}
    if variant in ("+general", "+both") and args.general_head != "fresh":
        values["general_head"] = args.general_head  # rows written before this option existed had random heads
    if variant in ("+general", "+both", "general student") and args.general_teacher != "pretrained":
        values["general_teacher"] = args.general_teacher  # ... and a general student of the pre-trained MiniLM
    return json.dumps(values, sort_keys=True)


def finished_runs(path: str, args) -> dict:
    """Results already measured with these settings (one JSON line per task distillation)."""
    done = {}
    if os.path.isfile(path):
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                if row.pop("settings") == settings_key(args, row["variant"]):
                    done[(row["layers"], row["variant"], row["seed"])] = row
    return done


def make_general_student(args, layers, teacher, log) -> tuple[str, dict]:
    from bertlite.cli.distill import DistillArguments, GeneralArguments
    from bertlite.distillation.general import run_general_distillation

    from_finetuned = args.general_teacher == "finetuned"
    out = os.path.join(args.work_dir, f"general-{layers}L" + ("-from-finetuned" if from_finetuned else ""))
    marker = os.path.join(out, "bench_settings.json")
    if os.path.isfile(marker):  # made by an earlier, interrupted run with the same settings: reuse it
        with open(marker) as f:
            saved = json.load(f)
        if saved["settings"] == settings_key(args, "general student"):
            return out, saved["metrics"]
    config = quiet_config(out, 0, max_steps=args.general_steps, per_device_train_batch_size=args.general_batch_size,
                          logging_steps=max(1, args.general_steps // 10),
                          learning_rate=args.general_learning_rate, logit_weight=0.0, hard_label_weight=0.0,
                          embedding_weight=1.0, hidden_weight=1.0, attention_weight=1.0)
    metrics = run_general_distillation(DistillArguments(teacher=teacher if from_finetuned else "minilm", student_layers=layers, max_length=args.general_max_length, fresh=True),
                                       GeneralArguments(general=True, corpus=args.general_corpus), config, log=log)
    with open(marker, "w") as f:
        json.dump({"settings": settings_key(args, "general student"), "metrics": metrics["general_distillation"]}, f)
    return out, metrics["general_distillation"]


def task_distill(args, teacher, layers, variant, seed, augmented_dir, general_dir, log) -> dict:
    from bertlite.cli.distill import DistillArguments
    from bertlite.distillation.job import run_distillation

    out = os.path.join(args.work_dir, "runs", f"{layers}L-{variant.strip('+')}-seed{seed}")
    with_aug = variant in ("+aug", "+both")
    with_general = variant in ("+general", "+both")
    run_args = DistillArguments(teacher=teacher, task="rotten_tomatoes", student=general_dir if with_general else None,
                                student_layers=layers, max_length=args.max_length, augmented=augmented_dir if with_aug else None,
                                max_train_examples=args.train_examples or None, max_eval_examples=args.eval_examples,
                                fresh=True, measure_latency=False, student_head=args.general_head)
    config = quiet_config(out, seed, num_train_epochs=args.aug_epochs if with_aug else args.epochs,
                          learning_rate=args.learning_rate, per_device_train_batch_size=args.batch_size,
                          per_device_eval_batch_size=64, hard_label_weight=args.hard_label_weight)
    started = time.perf_counter()
    metrics = run_distillation(run_args, config, log=log)
    seconds = time.perf_counter() - started
    result = {"layers": layers, "variant": variant, "seed": seed, "test_accuracy": metrics["student"]["test_accuracy"],
              "teacher_test_accuracy": metrics["teacher"]["test_accuracy"], "seconds": round(seconds, 1)}
    shutil.rmtree(out, ignore_errors=True)  # 24 students of ~70 MB each would only fill the disk
    return result


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def mean_std(values):
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def report(args, results, teacher_accuracy, augmentation, general, wall) -> str:
    lines = [f"\nrotten_tomatoes test accuracy ({f'first {args.eval_examples} of the' if args.eval_examples else 'full'} test split, {len(args.seed_list)} seed(s): {args.seed_list}; "
             f"{args.train_examples or 'all'} training examples; teacher MiniLM-L6 fine-tuned: {teacher_accuracy:.4f})", ""]
    header = f"{'student':<9}" + "".join(f"{v:>26}" for v in VARIANTS)
    lines.append(header)
    for layers in args.layer_list:
        cells = []
        for variant in VARIANTS:
            accs = [r["test_accuracy"] for r in results if r["layers"] == layers and r["variant"] == variant]
            m, s = mean_std(accs)
            cells.append(f"{m:.4f} ± {s:.4f} ({100 * m / teacher_accuracy:.1f}%)")
        lines.append(f"{f'{layers}-layer':<9}" + "".join(f"{c:>26}" for c in cells))
    lines.append("(mean ± sample std over seeds; % of the teacher's test accuracy)")
    lines.append("")
    lines.append("mean seconds per task distillation: " + ", ".join(
        f"{layers}L {v} {statistics.mean(r['seconds'] for r in results if r['layers'] == layers and r['variant'] == v):.0f}s"
        for layers in args.layer_list for v in VARIANTS))
    lines.append(f"augmentation: {augmentation['examples']} examples -> {augmentation['augmented_examples']} variants in "
                 f"{augmentation['seconds']:.1f}s = {augmentation['examples_per_second']:.1f} examples/s "
                 f"(N={args.num_variants}, p={args.probability}, top-{args.top_k}, embedding neighbours)")
    for layers, g in general.items():
        lines.append(f"general distillation {layers}L: {g['steps']} steps x {args.general_batch_size} sequences "
                     f"(<= {args.general_max_length} tokens) of {args.general_corpus}, teacher: {args.general_teacher} "
                     f"MiniLM, in {g['train_seconds']:.0f}s, "
                     f"logged loss {_fmt(g['first_logged_loss'])} -> {_fmt(g['last_logged_loss'])}")
    if 3 in args.layer_list:
        both = mean_std([r["test_accuracy"] for r in results if r["layers"] == 3 and r["variant"] == "+both"])[0]
        lines.append(f"goal: 3-layer +both at >= {100 * GOAL:.0f}% of the teacher: {100 * both / teacher_accuracy:.1f}% "
                     f"-> {'met' if both >= GOAL * teacher_accuracy else 'NOT met'}")
    reused = sum(1 for r in results if r.get("reused"))
    lines.append(f"wall time: {wall / 60:.1f} min on {os.cpu_count()} CPU(s)"
                 + (f" (this process only: {reused} of {len(results)} task distillations reused from an earlier run)" if reused else ""))
    return "\n".join(lines)


class Quiet:
    """Sends what the library prints (trainer logs, progress bars) to the log file; the terminal keeps milestones."""

    def __init__(self, stream):
        self.stream = stream

    def __enter__(self):
        self.saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = self.stream

    def __exit__(self, *exc):
        sys.stdout, sys.stderr = self.saved


def main(argv=None) -> int:
    import torch
    from transformers.utils import logging as hf_logging

    args = parse_args(argv)
    hf_logging.set_verbosity_error()
    started = time.perf_counter()
    os.makedirs(args.work_dir, exist_ok=True)
    log_path = os.path.join(args.work_dir, "bench.log")
    log_file = open(log_path, "a")

    def log(message):  # details go to the log file; the terminal gets the milestones
        log_file.write(str(message) + "\n")
        log_file.flush()

    def say(message):
        print(message, flush=True)
        log(message)

    say(f"bench_tinybert_recipe: seeds {args.seed_list}, students {args.layer_list} layers, {args.train_examples or 'all'} "
        f"training examples, torch threads {torch.get_num_threads()}; details in {log_path}")
    from transformers import AutoModelForSequenceClassification

    from bertlite.data import load_task
    from bertlite.evaluation import accuracy
    from bertlite.loading import load_tokenizer

    quiet = Quiet(log_file)
    with quiet:
        teacher = make_teacher(args, log)
        test = load_task("rotten_tomatoes", max_eval_examples=args.eval_examples)[0]["test"]
        teacher_accuracy = accuracy(AutoModelForSequenceClassification.from_pretrained(teacher), load_tokenizer(teacher), test,
                                    max_length=args.max_length)
    say(f"[{(time.perf_counter() - started) / 60:.1f} min] teacher ready: test accuracy {teacher_accuracy:.4f}")
    with quiet:
        augmentation = make_augmented(args, log)
    augmented_dir = os.path.join(args.work_dir, "augmented")
    say(f"[{(time.perf_counter() - started) / 60:.1f} min] augmentation: {augmentation['examples_per_second']:.1f} examples/s")
    general = {}
    general_dirs = {}
    for layers in args.layer_list:
        with quiet:
            general_dirs[layers], general[layers] = make_general_student(args, layers, teacher, log)
        say(f"[{(time.perf_counter() - started) / 60:.1f} min] general {layers}-layer student: "
            f"{general[layers]['train_seconds']:.0f}s")
    results = []
    runs_path = os.path.join(args.work_dir, "runs.jsonl")
    done = finished_runs(runs_path, args)
    for seed in args.seed_list:
        for layers in args.layer_list:
            for variant in VARIANTS:
                result = done.get((layers, variant, seed))
                if result is not None:
                    result = {**result, "reused": True}
                else:
                    with quiet:
                        result = task_distill(args, teacher, layers, variant, seed, augmented_dir, general_dirs[layers], log)
                    with open(runs_path, "a") as f:
                        f.write(json.dumps({**result, "settings": settings_key(args, variant)}) + "\n")
                results.append(result)
                say(f"[{(time.perf_counter() - started) / 60:.1f} min] seed {seed} {layers}L {variant:<9} "
                    f"test accuracy {result['test_accuracy']:.4f} ({result['seconds']:.0f}s)"
                    + (" (from an earlier run)" if result.get("reused") else ""))
    wall = time.perf_counter() - started
    text = report(args, results, teacher_accuracy, augmentation, general, wall)
    say(text)
    with open(os.path.join(args.work_dir, "results.json"), "w") as f:
        json.dump({"args": {k: v for k, v in vars(args).items()}, "teacher_test_accuracy": teacher_accuracy,
                   "augmentation": augmentation, "general": general, "runs": results, "wall_seconds": round(wall, 1)}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
