"""What distilling from a bert-base-shaped (and bert-large-shaped) teacher costs: step time and peak memory.

For each teacher shape and each student shape (DistilBERT-6: six teacher layers at full width; TinyBERT-4: 4 x 312,
FFN 1200, 12 heads, learned projections), and each precision/memory variant, three measurements run back to back
(and, with --repeats N, alternate N times, so that they see the same load on a shared machine), in two processes so
that each peak memory is its own:

- student: a plain training step of the student (transformers.Trainer, cross-entropy on the labels), in a process
  that never holds the teacher;
- distill: the teacher's forward pass as DistillationTrainer runs it (no_grad, hidden states returned), timed alone,
  then DistillationTrainer steps (teacher forward + student step + the distillation losses).

Reported: seconds per step (median of the measured steps, after warm-up), the ratio distill / (teacher + student),
peak resident memory (VmHWM, reset after the models are built, so it is the training steps' own peak) and tokens/s.
Goals (issue 17): ratio <= 1.10, and the teacher keeps no activations: peak(distill) <= 1.2 x peak(student) + the
teacher's weights. Teachers have random weights (scripts/make_bert_base_shape.py): time and memory do not depend on
the values.

    OMP_NUM_THREADS=1 python scripts/bench_scale.py                # bert-base: 2 students x 4 variants; bert-large
    python scripts/bench_scale.py --only bert-base --variants fp32 --steps 2
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_command import recorded_command  # noqa: E402

# variant -> (bf16 autocast for student and teacher, gradient checkpointing of the student, teacher_dtype)
VARIANTS = {
    "fp32": dict(bf16=False, checkpointing=False, teacher_dtype=None),
    "bf16-autocast": dict(bf16=True, checkpointing=False, teacher_dtype=None),
    "grad-ckpt": dict(bf16=False, checkpointing=True, teacher_dtype=None),
    "teacher-bf16": dict(bf16=False, checkpointing=False, teacher_dtype="bf16"),
}
MODES = ("student", "distill")
RATIO_GOAL, MEMORY_FACTOR = 1.10, 1.2


# ----- worker: one measurement in a fresh process ------------------------------------------------------------------
def _reset_peak_rss() -> bool:
    """Linux: writing 5 to clear_refs resets VmHWM, so the peak read later is the training steps' own."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _weights_mb(model) -> float:
    return sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20


def _dataset(n: int, seq_len: int, vocab: int, seed: int = 0):
    import torch
    from datasets import Dataset

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, vocab, (n, seq_len), generator=g)
    ids[:, 0], ids[:, -1] = 101, 102  # [CLS] ... [SEP]
    return Dataset.from_dict({"input_ids": ids.tolist(), "attention_mask": [[1] * seq_len] * n,
                              "labels": torch.randint(0, 2, (n,), generator=g).tolist()})


class _StepTimer:
    """A TrainerCallback that records each optimizer step's wall time (forward, backward and optimizer)."""

    def __init__(self):
        from transformers import TrainerCallback

        timer = self

        class Callback(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                timer.start = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                timer.times.append(time.perf_counter() - timer.start)

        self.times: list[float] = []
        self.callback = Callback()


def _training_args(cls, out: str, job: dict, **extra):
    return cls(output_dir=out, max_steps=job["warmup"] + job["steps"], per_device_train_batch_size=job["batch"],
               learning_rate=1e-5, report_to="none", save_strategy="no", eval_strategy="no", logging_strategy="no",
               use_cpu=True, seed=0, disable_tqdm=True, bf16=job["bf16"], gradient_checkpointing=job["checkpointing"],
               dataloader_num_workers=0, **extra)


def _time_teacher(teacher, data, job: dict) -> float:
    """The teacher's forward as DistillationTrainer runs it (no_grad, hidden states, the step's autocast), timed in
    the distillation's own process just before its steps: the two see the same load."""
    import torch
    from transformers import default_data_collator

    times = []
    for s in range(job["warmup"] + job["steps"]):
        batch = default_data_collator([data[i] for i in range(s * job["batch"], (s + 1) * job["batch"])])
        batch.pop("labels")
        start = time.perf_counter()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=job["bf16"]):
            teacher(**batch, output_hidden_states=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times[job["warmup"]:])


def worker(job: dict) -> dict:
    import torch
    from transformers import BertForSequenceClassification, Trainer, TrainingArguments, default_data_collator

    from bertlite.distillation.config import DistillationConfig
    from bertlite.distillation.student import build_student
    from bertlite.distillation.trainer import DistillationTrainer
    from make_bert_base_shape import STUDENTS, bert_shape_config, build_bert_shape

    torch.set_num_threads(job["threads"])
    student_shape = STUDENTS[job["student"]]
    data = _dataset(job["batch"] * (job["warmup"] + job["steps"]), job["seq_len"], 30522)
    result = {"teacher_weights_mb": None}
    with tempfile.TemporaryDirectory() as out:
        if job["mode"] == "student":
            # The same shape as the student distillation builds, without ever holding the teacher (clean memory).
            config = bert_shape_config(job["teacher"])
            config.num_hidden_layers = student_shape["num_layers"]
            for key in ("hidden_size", "intermediate_size", "num_attention_heads"):
                setattr(config, key, student_shape.get(key, getattr(config, key)))
            torch.manual_seed(0)
            student = BertForSequenceClassification(config)
            timer = _StepTimer()
            trainer = Trainer(model=student, args=_training_args(TrainingArguments, out, job), train_dataset=data,
                              data_collator=default_data_collator, callbacks=[timer.callback])
            gc.collect()
            result["peak_reset"] = _reset_peak_rss()
            trainer.train()
            times = timer.times
        else:
            teacher = build_bert_shape(job["teacher"], "classifier")
            student = build_student(teacher, **student_shape)
            timer = _StepTimer()
            args = _training_args(DistillationConfig, out, job, teacher_dtype=job["teacher_dtype"],
                                  save_on_interrupt=False)
            trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args, train_dataset=data,
                                          data_collator=default_data_collator, callbacks=[timer.callback])
            result["teacher_weights_mb"] = _weights_mb(trainer.teacher)
            result["losses"] = sorted(k for k in ("logit", "hard_label", "embedding", "hidden", "attention")
                                      if getattr(args, f"{k}_weight") > 0)
            result["teacher_fwd_s"] = _time_teacher(trainer.teacher, data, job)
            gc.collect()
            result["peak_reset"] = _reset_peak_rss()
            trainer.train()
            times = timer.times
            result["peak_rss_mb"] = _peak_rss_mb()  # before the plain step below adds a second optimizer state
            # The plain student step again, in this process right after the distillation steps: a ratio whose three
            # terms ran back to back in one process (the student process above gives the clean memory).
            plain_timer = _StepTimer()
            Trainer(model=student, args=_training_args(TrainingArguments, out, job), train_dataset=data,
                    data_collator=default_data_collator, callbacks=[plain_timer.callback]).train()
            result["student_step_same_process_s"] = statistics.median(plain_timer.times[job["warmup"]:])
    measured = times[job["warmup"]:]
    result.update(step_s=statistics.median(measured), steps_s=[round(t, 3) for t in measured],
                  peak_rss_mb=result.get("peak_rss_mb") or _peak_rss_mb(), tokens_per_s=job["batch"] * job["seq_len"] / statistics.median(measured))
    return result


# ----- parent: the grid, one process per measurement ---------------------------------------------------------------
def _run_job(job: dict) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(job["threads"]), "MKL_NUM_THREADS": str(job["threads"]),
           "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], capture_output=True, text=True,
                         env=env, cwd=ROOT)
    if run.returncode != 0:
        raise SystemExit(f"measurement {job} failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def _combine(runs: list[dict]) -> dict:
    """One measurement from repeated processes: step times are medians over every measured step of every repeat
    (the teacher's forward and the same-process student step: the median of the repeats' medians, which is all a
    worker reports of them), peak memory the highest repeat's (the bound must hold for each)."""
    combined = dict(runs[0])
    steps = [t for r in runs for t in r["steps_s"]]
    combined.update(steps_s=steps, step_s=statistics.median(steps), peak_rss_mb=max(r["peak_rss_mb"] for r in runs))
    tokens_per_step = runs[0]["tokens_per_s"] * runs[0]["step_s"]  # batch x seq, the same in every repeat
    combined["tokens_per_s"] = tokens_per_step / combined["step_s"]
    for key in ("teacher_fwd_s", "student_step_same_process_s"):
        if key in combined:
            combined[key] = statistics.median(r[key] for r in runs)
    return combined


def _machine(threads: int) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import torch

    return (f"{cpu}, {os.cpu_count()} cores visible, {threads} thread(s) per measurement, torch {torch.__version__}, "
            f"Python {platform.python_version()}")


def _row(cfg: dict, r: dict) -> dict:
    s, d = r["student"], r["distill"]
    ratio = d["step_s"] / (d["teacher_fwd_s"] + s["step_s"])
    same = d["step_s"] / (d["teacher_fwd_s"] + d["student_step_same_process_s"])
    bound = MEMORY_FACTOR * s["peak_rss_mb"] + d["teacher_weights_mb"]
    return {**cfg, "teacher_fwd_s": d["teacher_fwd_s"], "student_step_s": s["step_s"], "distill_step_s": d["step_s"],
            "ratio": ratio, "ratio_same_process": same, "student_step_same_process_s": d["student_step_same_process_s"],
            "distill_tokens_s": d["tokens_per_s"], "student_tokens_s": s["tokens_per_s"],
            "rss_student_mb": s["peak_rss_mb"], "rss_distill_mb": d["peak_rss_mb"],
            "teacher_weights_mb": d["teacher_weights_mb"], "memory_bound_mb": bound,
            "ratio_ok": ratio <= RATIO_GOAL, "memory_ok": d["peak_rss_mb"] <= bound, "losses": d.get("losses"),
            "raw": r}


def _table(rows: list[dict]) -> str:
    head = ("| teacher | student | batch x seq | variant | teacher fwd s | student step s | distill step s | ratio "
            "(goal <= 1.10) | same-process ratio | distill tok/s | peak RSS student MB | peak RSS distill MB | teacher weights MB | "
            "1.2 x student + teacher MB | memory goal |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in rows:
        lines.append(f"| {r['teacher']} | {r['student']} | {r['batch']} x {r['seq_len']} | {r['variant']} | "
                     f"{r['teacher_fwd_s']:.2f} | {r['student_step_s']:.2f} | {r['distill_step_s']:.2f} | "
                     f"{r['ratio']:.2f} {'ok' if r['ratio_ok'] else 'MISSED'} | {r['ratio_same_process']:.2f} | "
                     f"{r['distill_tokens_s']:.0f} | "
                     f"{r['rss_student_mb']:.0f} | {r['rss_distill_mb']:.0f} | {r['teacher_weights_mb']:.0f} | "
                     f"{r['memory_bound_mb']:.0f} | {'ok' if r['memory_ok'] else 'MISSED'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--only", choices=["bert-base", "bert-large"], help="Measure one teacher shape only.")
    parser.add_argument("--students", nargs="+", default=["distilbert-6", "tinybert-4"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        help="Variants for the bert-base teacher (bert-large runs fp32 only, to show the memory).")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq_len", type=int, default=64)
    parser.add_argument("--large_batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2, help="Measured steps per measurement (after --warmup).")
    parser.add_argument("--large_steps", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1,
                        help="Run the student and distillation processes this many times, alternating (medians over all).")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    parser.add_argument("--json_out", help="Also write the rows (with every raw measurement) to this JSON file.")
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0

    configs = []
    if args.only in (None, "bert-base"):
        configs += [dict(teacher="bert-base", student=s, variant=v, batch=args.batch, steps=args.steps)
                    for s in args.students for v in args.variants]
    if args.only in (None, "bert-large"):
        configs += [dict(teacher="bert-large", student=s, variant="fp32", batch=args.large_batch, steps=args.large_steps)
                    for s in args.students]
    command = recorded_command("bench_scale.py", list(argv or sys.argv[1:]), prefix=f"OMP_NUM_THREADS={args.threads}")
    print(f"command: {command.strip()}\nmachine: {_machine(args.threads)}\nload average before: {os.getloadavg()}",
          flush=True)
    rows, started = [], time.time()
    for cfg in configs:
        runs = {mode: [] for mode in MODES}
        # The two processes alternate, --repeats times: each term of the ratio is then a median over moments spread
        # across the same stretch of time, so a load that changes on a shared machine moves all three alike.
        for _ in range(args.repeats):
            for mode in MODES:
                job = {**cfg, **VARIANTS[cfg["variant"]], "mode": mode, "seq_len": args.seq_len, "warmup": args.warmup,
                       "threads": args.threads}
                runs[mode].append(_run_job(job))
        rows.append(_row(cfg | {"seq_len": args.seq_len, "repeats": args.repeats},
                         {mode: _combine(r) for mode, r in runs.items()}))
        r = rows[-1]
        print(f"  {cfg['teacher']} -> {cfg['student']} [{cfg['variant']}]: distill {r['distill_step_s']:.2f}s/step, "
              f"ratio {r['ratio']:.2f}, peak RSS {r['rss_distill_mb']:.0f} MB (bound {r['memory_bound_mb']:.0f})", flush=True)
    print(f"load average after: {os.getloadavg()}; wall time {time.time() - started:.0f} s\n")
    print(f"Goals: step ratio distill / (teacher forward + plain student step) <= {RATIO_GOAL}; peak RSS of a "
          f"distillation step <= {MEMORY_FACTOR} x the student's plain training step + the teacher's weights.")
    print(f"Losses of the distillation step: {rows[0]['losses'] if rows else '-'} (DistillationConfig defaults); "
          f"seconds are medians of the measured steps; tok/s = batch x seq / distill step.\n")
    print(_table(rows))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"command": command, "machine": _machine(args.threads), "rows": rows},
                                                  indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
