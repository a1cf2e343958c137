"""Distillation benchmark on the embedded default (packaged all-MiniLM-L6-v2 teacher, rotten_tomatoes).

Prints, measured in this one run:
1. step-time overhead: distillation step / (teacher forward + plain student training step), same batch,
   interleaved so a busy neighbour slows all three alike;
2. test accuracy over several seeds (mean +- std): fine-tuned teacher, the distilled 3-layer student
   (`bertlite distill` defaults), and the same student trained on the labels alone without a teacher, for the
   same number of optimizer steps. The label-only student starts where the distilled one does (the fine-tuned
   teacher's layers and head: "shrink and fine-tune"); --pretrained-baseline adds one that never sees the teacher
   (the pre-trained MiniLM's layers). Results: docs/results/distillation.md.

    python scripts/bench_distill.py                 # full run (3 seeds; about an hour on 2 quiet cores)
    python scripts/bench_distill.py --quick         # smoke run on a slice of the data
    python scripts/bench_distill.py --shared-teacher bertlite-distilled/teacher --pretrained-baseline --seeds 0 1 2 3 4
    python scripts/bench_distill.py --set hidden_weight=0 --set temperature=4   # another recipe (any DistillationConfig field)
    python scripts/bench_distill.py --set transfer_data=imdb --set num_train_epochs=1   # + IMDB transfer set, same steps
    python scripts/bench_distill.py --shared-teacher RUN/teacher --set extra_teachers=RUN/teacher-2,RUN/teacher-3  # ensemble teacher
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # runs from a checkout without install
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer, TrainingArguments  # noqa: E402

from bertlite.cli.distill import DistillTrainingArguments  # noqa: E402
from bertlite.data import load_task, tokenize  # noqa: E402
from bertlite.cli.distill import DistillArguments  # noqa: E402
from bertlite.distillation.job import run_distillation  # noqa: E402
from bertlite.evaluation import accuracy  # noqa: E402
from bertlite.loading import load_tokenizer, resolve_model_name  # noqa: E402
from bertlite.distillation.student import build_student  # noqa: E402
from bertlite.distillation.teacher import finetuned_teacher  # noqa: E402
from bertlite.metrics import metric_spec, trainer_compute_metrics  # noqa: E402
from bertlite.distillation.trainer import DistillationTrainer  # noqa: E402


def step_overhead(rounds: int, batch_size: int, attention: bool) -> dict:
    tokenizer = load_tokenizer("minilm")
    dsd, _ = load_task("rotten_tomatoes")
    texts = dsd["train"]["text"][:batch_size]
    batch = dict(tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt"))
    batch["labels"] = torch.tensor(dsd["train"]["label"][:batch_size])
    teacher = AutoModelForSequenceClassification.from_pretrained(resolve_model_name("minilm"), num_labels=2).eval()
    plain = build_student(teacher, num_layers=3).train()
    distilled = build_student(teacher, num_layers=3).train()
    config = DistillTrainingArguments(output_dir=tempfile.mkdtemp(prefix="bertlite-bench-step-"), report_to="none", use_cpu=True, eval_strategy="no",
                                      attention_weight=1.0 if attention else 0.0, save_on_interrupt=False)
    trainer = DistillationTrainer(model=distilled, teacher_model=teacher, args=config)
    opt_plain = torch.optim.AdamW(plain.parameters(), lr=1e-5)
    opt_distill = torch.optim.AdamW(list(distilled.parameters()) + list(trainer.projections.parameters()), lr=1e-5)
    if attention:  # the baseline must run the same attention kernel as the student it is compared with
        plain.set_attn_implementation("eager")

    def teacher_forward():
        with torch.no_grad():
            teacher(**{k: v for k, v in batch.items() if k != "labels"})

    def plain_step():
        loss = plain(**batch).loss
        loss.backward()
        opt_plain.step()
        opt_plain.zero_grad()

    def distill_step():
        loss = trainer.compute_loss(distilled, batch)
        loss.backward()
        opt_distill.step()
        opt_distill.zero_grad()

    timings = {"teacher_forward": [], "plain_step": [], "distill_step": []}
    funcs = {"teacher_forward": teacher_forward, "plain_step": plain_step, "distill_step": distill_step}
    for fn in funcs.values():  # warm-up
        fn()
    for _ in range(rounds):
        for name, fn in funcs.items():
            start = time.perf_counter()
            fn()
            timings[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) * 1000 for k, v in timings.items()}
    med["ratio"] = med["distill_step"] / (med["teacher_forward"] + med["plain_step"])
    med["seq_len"] = int(batch["input_ids"].shape[1])
    return med


def train_without_teacher(seed: int, teacher_path: str, out: str, recipe: DistillTrainingArguments, max_train: int | None,
                          max_eval: int | None, epoch_scale: float = 1.0, init: str = "teacher") -> float:
    """The 3-layer student trained on the labels alone with plain Trainer and the distillation run's optimisation
    settings (epochs, learning rate, batch, warm-up, sampler). `init="teacher"`: the same initial weights as the
    distilled student (layers and head of the fine-tuned teacher: no soft targets, but the teacher's weights —
    "shrink and fine-tune"); `init="pretrained"`: the same layers of the pre-trained MiniLM and a random head, i.e.
    a student that never sees the teacher. `epoch_scale` stretches the epochs so that it takes as many optimizer
    steps as a distillation run whose training data had unlabeled examples added (a transfer set of as many
    sentences as labelled ones: x2)."""
    tokenizer = load_tokenizer("minilm")
    dsd, _ = load_task("rotten_tomatoes", max_train_examples=max_train, max_eval_examples=max_eval)
    torch.manual_seed(seed)  # the random head of the pre-trained init
    source = teacher_path if init == "teacher" else resolve_model_name("minilm")
    student = build_student(AutoModelForSequenceClassification.from_pretrained(source, num_labels=2), num_layers=3, seed=seed)
    args = TrainingArguments(output_dir=out, num_train_epochs=recipe.num_train_epochs * epoch_scale, learning_rate=recipe.learning_rate,
                             per_device_train_batch_size=recipe.per_device_train_batch_size, warmup_steps=recipe.warmup_steps,
                             weight_decay=recipe.weight_decay, train_sampling_strategy=recipe.train_sampling_strategy,
                             eval_strategy="no", save_strategy="no", logging_steps=50, seed=seed, report_to="none")
    encoded = tokenize(dsd, tokenizer, 128)
    trainer = Trainer(model=student, args=args, train_dataset=encoded["train"], data_collator=DataCollatorWithPadding(tokenizer),
                      compute_metrics=trainer_compute_metrics(metric_spec("rotten_tomatoes")))
    trainer.train()
    return accuracy(trainer.model, tokenizer, dsd["test"])


def epoch_scale(metrics: dict) -> float:
    """Training examples of the distillation run (labelled + transfer/augmented) per labelled example."""
    counts = metrics["training_examples"]
    return (counts["labelled"] + counts["soft_targets_only"]) / counts["labelled"]


def parse_overrides(pairs: list[str]) -> tuple[dict, dict]:
    """FIELD=VALUE strings -> (typed DistillationConfig values, typed job values such as `augmented`), parsed exactly
    as `bertlite distill --FIELD VALUE`."""
    import dataclasses

    from bertlite.cli import parse_command

    owners = {f.name: cls for cls in (DistillTrainingArguments, DistillArguments) for f in dataclasses.fields(cls)}
    names = [pair.partition("=")[0] for pair in pairs]
    for pair, name in zip(pairs, names):
        if "=" not in pair or name not in owners:
            raise SystemExit(f"--set {pair!r}: expected FIELD=VALUE with a field of `bertlite distill` (see its --help)")
    _, parsed = parse_command("distill", [f"--{pair}" for pair in pairs])
    found = [tuple(p for p in parsed if isinstance(p, cls))[0] for cls in (DistillTrainingArguments, DistillArguments)]
    config, job = ({name: getattr(obj, name) for name in names if owners[name] is type(obj)} for obj in found)
    return config, job


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--output-dir", default="bench-out/distill")
    parser.add_argument("--quick", action="store_true", help="tiny slices of the data, 1 epoch, 1 seed: checks the script runs")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--shared-teacher", default=None, metavar="DIR",
                        help="use this fine-tuned teacher folder for every seed instead of fine-tuning one per seed "
                             "(e.g. the teacher/ folder a default `bertlite distill` run wrote); saves ~40%% of the time")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="change one field of the distillation recipe (`bertlite distill` defaults), e.g. --set temperature=4; "
                             "repeatable. Optimisation fields (epochs, learning rate, ...) apply to the no-teacher student too.")
    parser.add_argument("--skip-step", action="store_true", help="skip the step-time measurement")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 lets two recipes run side by side on 2 cores)")
    parser.add_argument("--skip-baseline", action="store_true", help="skip the no-teacher student")
    parser.add_argument("--pretrained-baseline", action="store_true",
                        help="also train a student that never sees the teacher: the same layers of the pre-trained MiniLM "
                             "(random head), labels only, same steps")
    args = parser.parse_args()
    overrides, job_overrides = parse_overrides(args.overrides)
    torch.set_num_threads(min(args.threads, os.cpu_count() or 1))
    started = time.time()
    max_train = 128 if args.quick else None
    max_eval = 64 if args.quick else None
    seeds = args.seeds[:1] if args.quick else args.seeds

    print("== 1. Step time (batch 32 rotten_tomatoes sentences, 3-layer student, median of interleaved rounds)")
    rounds = 3 if args.quick else args.rounds
    results = {"step": {}, "overrides": {**overrides, **job_overrides}}
    for attention in () if args.skip_step else (False, True):
        m = step_overhead(rounds, 32, attention)
        label = "default losses (logits, labels, hidden)" if not attention else "with attention loss (eager attention)"
        results["step"][label] = m
        print(f"{label:44s} teacher fwd {m['teacher_forward']:.0f} ms + plain student step {m['plain_step']:.0f} ms; "
              f"distillation step {m['distill_step']:.0f} ms -> ratio {m['ratio']:.3f} (goal <= 1.15)")

    if not args.skip_accuracy:
        print(f"\n== 2. Test accuracy on rotten_tomatoes over seeds {seeds}")
        rows = {"teacher": [], "distilled": [], "no_teacher": []}
        for seed in seeds:
            out = os.path.join(args.output_dir, f"seed{seed}")
            teacher_epochs = 1.0 if args.quick else DistillArguments().teacher_epochs
            distill_args = DistillArguments(max_train_examples=max_train, max_eval_examples=max_eval, teacher_epochs=teacher_epochs,
                                            measure_latency=False, teacher=args.shared_teacher or "minilm",
                                            **job_overrides)
            # No checkpoints: the benchmark measures accuracy, and 2 checkpoints per seed would only fill the disk.
            config = DistillTrainingArguments(output_dir=out, seed=seed, report_to="none",
                                              **{"save_strategy": "no", **({"num_train_epochs": 1} if args.quick else {}), **overrides})
            metrics = run_distillation(distill_args, config, log=lambda *a: None)
            rows["teacher"].append(metrics["teacher"]["test_accuracy"])
            if "ensemble" in metrics["teacher"]:  # the teacher row is the ensemble; also keep its first member
                rows.setdefault("first_member", []).append(metrics["teacher"]["ensemble"]["member_test_accuracy"][0])
            rows["distilled"].append(metrics["student"]["test_accuracy"])
            teacher_dir = args.shared_teacher or os.path.join(out, "teacher")
            if not args.skip_baseline:
                rows["no_teacher"].append(train_without_teacher(seed, teacher_dir, os.path.join(out, "no-teacher"),
                                                                config, max_train, max_eval, epoch_scale(metrics)))
            if args.pretrained_baseline:
                rows.setdefault("no_teacher_pretrained", []).append(train_without_teacher(
                    seed, teacher_dir, os.path.join(out, "no-teacher-pretrained"), config, max_train, max_eval,
                    epoch_scale(metrics), init="pretrained"))
            baseline = f"no-teacher {rows['no_teacher'][-1]:.4f}" if rows["no_teacher"] else ""
            if "no_teacher_pretrained" in rows:
                baseline += f"  no-teacher from pre-trained layers {rows['no_teacher_pretrained'][-1]:.4f}"
            print(f"seed {seed}: teacher {rows['teacher'][-1]:.4f}  distilled {rows['distilled'][-1]:.4f}  {baseline}", flush=True)

        def fmt(values):
            mean = statistics.mean(values)
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            return f"{100 * mean:.2f} +- {100 * spread:.2f}"

        print(f"\n{'model':34s} accuracy (mean +- std over {len(seeds)} seeds)")
        label = "teacher (one shared fine-tune)" if args.shared_teacher else "teacher (MiniLM-L6, fine-tuned)"
        if "first_member" in rows:
            label = "teacher ensemble (averaged logits)"
        print(f"{label:34s} {fmt(rows['teacher'])}")
        if "first_member" in rows:
            print(f"{'  its first member alone':34s} {fmt(rows['first_member'])}")
        print(f"{'3-layer student, distilled':34s} {fmt(rows['distilled'])}")
        ratio = statistics.mean(rows["distilled"]) / statistics.mean(rows["teacher"])
        line = f"distilled / teacher = {100 * ratio:.1f}% (goal >= 97%)"
        if "first_member" in rows:
            line += f" (of the first member alone: {100 * statistics.mean(rows['distilled']) / statistics.mean(rows['first_member']):.1f}%)"
        if rows["no_teacher"]:
            print(f"{'3-layer student, no teacher':34s} {fmt(rows['no_teacher'])}  (the teacher's layers and head, labels only)")
            line += (f"; distilled - no-teacher = "
                     f"{100 * (statistics.mean(rows['distilled']) - statistics.mean(rows['no_teacher'])):+.2f} points (goal > 0)")
        if "no_teacher_pretrained" in rows:
            print(f"{'3-layer student, never a teacher':34s} {fmt(rows['no_teacher_pretrained'])}  (pre-trained MiniLM layers, labels only)")
            line += (f"; distilled - never-a-teacher = "
                     f"{100 * (statistics.mean(rows['distilled']) - statistics.mean(rows['no_teacher_pretrained'])):+.2f} points")
        print(line)
        if overrides or job_overrides:
            print(f"recipe changes from the `bertlite distill` defaults: {results['overrides']}")
        results["accuracy"] = rows
    results["wall_seconds"] = round(time.time() - started)
    os.makedirs(args.output_dir, exist_ok=True)
    with open(os.path.join(args.output_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(f"\nwall time {results['wall_seconds']} s; results in {args.output_dir}/results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
