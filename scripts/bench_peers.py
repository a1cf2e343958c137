"""bertlite's distillation side by side with a peer tool, on one split, one teacher and one student initialisation.

Recipes (each for the 3-layer and/or 2-layer student `build_student(teacher, num_layers=N, seed=seed)`):
  peer      TextBrewer 0.2.1 `GeneralDistiller` with its example recipe: hidden-state MSE on matched layers including
            the embeddings (3 layers: (0,0),(1,2),(2,4),(3,6); 2 layers: (0,0),(1,3),(2,6); weight 1 each, summed),
            soft cross-entropy at T=4 with weight 1, no hard labels; AdamW lr 1e-4, weight decay 0.01 except biases and
            LayerNorm, linear schedule with 10% warm-up, batch 32, 3 epochs, random batches, max length 128
            (needs the optional extra: pip install 'bertlite[peers]')
  defaults  `bertlite distill` defaults (DistillTrainingArguments: 3 epochs, lr 2e-4 (1e-4 before round 7), batch 32, 10% warm-up,
            group_by_length, the DistillationConfig loss defaults: since issue 18 TextBrewer's loss in bertlite's
            terms; the earlier defaults are the candidate v1 below)
  sft       shrink and fine-tune: the same student start, labels only, plain Trainer, the defaults' optimisation with
            3 epochs at lr 1e-4 (pinned: SFT)
  NAME      --candidate NAME:field=value,field=value: the defaults with DistillationConfig/DistillTrainingArguments
            fields changed (values parsed as `bertlite distill --field value`), and optionally a transfer set
            (`transfer_data=imdb`, `transfer_examples=N`: unlabeled sentences added to the training data, learned from
            soft targets only, chosen with the run's seed as `bertlite distill --seed` does), or TinyBERT's augmentation
            (`augment_variants=N` with `max_steps`: N word-replacement variants of every training sentence, as
            `bertlite augment` then `bertlite distill --augmented` make them, with the run's seed)

Each recipe runs at its own default length; --equal-steps adds runs of every recipe for one common number of
optimizer steps (the peer's own length unless --equal-length N), and --lengths equal runs only those (for a
candidate that already trains that long).
Every trained student is scored on every evaluation split and all are cached, so the test split never needs a
second training; the tables and progress lines show validation unless --split (test: printed once, for the setting
chosen on validation or holdout). Each run also keeps which sentences it got right, and the paired differences then
carry a 95% bootstrap interval over sentences and seeds: a split of ~850 sentences limits what can be told apart far
more than the seeds do.
--holdout N holds N training sentences out of every run, the teacher's fine-tune included, as a third split
("holdout") that no model trains on or selects a checkpoint on: settings chosen there (--split holdout) are chosen
where the teacher has no advantage of its own (it keeps its best epoch by validation).
Every run is cached in OUTPUT_DIR/results.json under (recipe, depth, seed, steps, data size; a candidate with its
fields sorted and typed, so the order they are written in does not matter), so an interrupted
benchmark resumes and --merge adds runs made elsewhere (two processes, e.g. one per depth, each with its own
--output-dir, then one --report-only --merge run).

    python scripts/bench_peers.py --max-train-examples 256 --max-eval-examples 128 --seeds 0 --depths 3   # smoke run
    python scripts/bench_peers.py --depths 3 --seeds 0,1,2 \\
        --candidate tb_like:temperature=4,logit_weight=0.0625,hard_label_weight=0,embedding_weight=1,layer_loss_reduction=sum,num_train_epochs=3
    python scripts/bench_peers.py --depths 3,2 --seeds 0,1,2,3,4 --equal-steps
    python scripts/bench_peers.py --holdout 1706 --depths 2 --seeds 0,1,2 --split holdout
    python scripts/bench_peers.py --depths 2 --seeds 0,1,2,3,4 --recipes '' \
        --candidate tr:temperature=4,logit_weight=0.0625,hard_label_weight=0,embedding_weight=1,layer_loss_reduction=sum,num_train_epochs=3,transfer_data=imdb
    python scripts/bench_peers.py --depths 3 --seeds 0,1,2 --recipes defaults,sft \
        --candidate v1:temperature=2,logit_weight=1,hard_label_weight=0.5,embedding_weight=0,layer_loss_reduction=mean,num_train_epochs=2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time

# Runs from a checkout without install; the scripts folder holds the helpers it shares with the other benchmarks.
sys.path[:0] = [os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.path.dirname(os.path.abspath(__file__))]
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from transformers import (AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer, TrainingArguments,  # noqa: E402
                          get_linear_schedule_with_warmup)

from bertlite import DistillationTrainer, build_student, finetuned_teacher  # noqa: E402
from bertlite.cli.distill import DistillTrainingArguments  # noqa: E402
from bertlite.data import load_task, tokenize  # noqa: E402
from bertlite.evaluation import predict  # noqa: E402
from bertlite.loading import load_tokenizer  # noqa: E402
from bench_command import checkout_relative, recorded_command  # noqa: E402

TASK = "rotten_tomatoes"
MAX_LENGTH = 128
BATCH = 32
PEER = {"epochs": 3, "lr": 1e-4, "weight_decay": 0.01, "warmup": 0.1, "temperature": 4.0}
# Shrink and fine-tune's length and learning rate, pinned as the peer's are: its stored runs are keyed without them,
# so they must not follow a change of bertlite's defaults. Labels alone at other settings are a candidate with every
# soft-target weight at 0 (e.g. sft2 in docs/results/peers.md).
SFT = {"num_train_epochs": 3.0, "learning_rate": 1e-4}
BUILTIN = ("peer", "defaults", "sft")
BOOTSTRAP = 2000  # resamples for the paired intervals


def fresh_student(setup: dict, depth: int, seed: int) -> torch.nn.Module:
    """The shared start of every recipe. The teacher object is shared and DistillationTrainer freezes it, so the
    student copied from it is made trainable again."""
    torch.manual_seed(seed)
    return build_student(setup["teacher"], num_layers=depth, seed=seed).requires_grad_(True).train()


# ----- recipes ---------------------------------------------------------------------------------------------------
def peer_matches(depth: int, teacher_layers: int) -> list[tuple[int, int]]:
    """(student, teacher) hidden-state indices of TextBrewer's examples: the embeddings, then every k-th layer."""
    return [(0, 0)] + [(i, round(i * teacher_layers / depth)) for i in range(1, depth + 1)]


def peer_import_error() -> str | None:
    try:
        import textbrewer  # noqa: F401
    except Exception as err:  # an old tensorboard or a missing one fails at import time too
        return f"{type(err).__name__}: {err}"
    return None


def run_peer(setup: dict, depth: int, seed: int, steps: int | None = None) -> torch.nn.Module:
    """TextBrewer's GeneralDistiller, configured as in its examples; no checkpoints are written. `steps` (a whole
    number of epochs) replaces its 3 epochs for an equal-steps comparison at another length."""
    from textbrewer import DistillationConfig as TBDistillationConfig
    from textbrewer import GeneralDistiller, TrainingConfig

    class Distiller(GeneralDistiller):
        def save_and_callback(self, global_step, step, epoch, callback):  # the benchmark keeps the model in memory
            pass

    def adaptor(batch, outputs):  # transformers v5 outputs -> the names TextBrewer reads
        return {"logits": outputs.logits, "hidden": list(outputs.hidden_states), "inputs_mask": batch["attention_mask"]}

    teacher = setup["teacher"]
    student = fresh_student(setup, depth, seed)
    matches = [{"layer_T": t, "layer_S": s, "feature": "hidden", "loss": "hidden_mse", "weight": 1}
               for s, t in peer_matches(depth, teacher.config.num_hidden_layers)]
    distill_config = TBDistillationConfig(temperature=PEER["temperature"], kd_loss_type="ce", kd_loss_weight=1,
                                          hard_label_weight=0, intermediate_matches=matches)
    no_decay = ("bias", "LayerNorm.weight")
    groups = [{"params": [p for n, p in student.named_parameters() if not any(k in n for k in no_decay)], "weight_decay": PEER["weight_decay"]},
              {"params": [p for n, p in student.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=PEER["lr"])
    collate = DataCollatorWithPadding(setup["tokenizer"])
    loader = torch.utils.data.DataLoader(setup["train"], batch_size=BATCH, shuffle=True, collate_fn=collate,
                                         generator=torch.Generator().manual_seed(seed))
    epochs = PEER["epochs"] if steps is None else steps // len(loader)
    if steps is not None and steps != epochs * len(loader):
        raise SystemExit(f"The peer trains whole epochs of {len(loader)} steps; {steps} steps is not a whole number of them.")
    steps = epochs * len(loader)
    with tempfile.TemporaryDirectory(prefix="bench-peers-tb-") as tmp:
        distiller = Distiller(TrainingConfig(device="cpu", output_dir=tmp, log_dir=None), distill_config, teacher, student, adaptor, adaptor)
        with distiller:
            distiller.train(optimizer, loader, num_epochs=epochs, scheduler_class=get_linear_schedule_with_warmup,
                            scheduler_args={"num_warmup_steps": int(PEER["warmup"] * steps), "num_training_steps": steps},
                            batch_postprocessor=lambda b: {k: v for k, v in b.items() if k != "labels"},
                            output_hidden_states=True)
    return student


def defaults_config(out: str, seed: int, fields: dict, steps: int | None) -> DistillTrainingArguments:
    """`bertlite distill`'s training arguments with the benchmark's bookkeeping off (no checkpoints, no per-epoch
    evaluation, no progress bar); `steps` overrides the length for the equal-steps comparison."""
    length = {"max_steps": steps} if steps else {}
    return DistillTrainingArguments(output_dir=out, seed=seed, report_to="none", save_strategy="no", eval_strategy="no",
                                    save_on_interrupt=False, disable_tqdm=True, logging_steps=100, **{**fields, **length})


def training_data(setup: dict, seed: int, job: dict):
    """The tokenized training split, followed by the candidate's transfer set if it has one (chosen with the run's
    seed and never from the evaluation splits, as `bertlite distill --transfer_data` does) or by its augmented
    variants of the training split."""
    if job.get("augment_variants"):
        return with_augmentation(setup, seed, job["augment_variants"])
    if not job.get("transfer_data"):
        return setup["train"]
    from bertlite.distillation.transfer import with_transfer_set

    held_out = set().union(*(setup["dsd"][split]["text"] for split in eval_splits(setup["dsd"])))
    train, _ = with_transfer_set(setup["train"], job["transfer_data"], transfer_count(job, len(setup["train"])), setup["tokenizer"],
                                 max_length=MAX_LENGTH, seed=seed, exclude=held_out, log=lambda *a: None)
    return train


def with_augmentation(setup: dict, seed: int, variants: int):
    """The training split followed by `variants` word-replacement variants of each of its sentences, learned from
    soft targets only: what `bertlite augment --num_variants N` (its defaults otherwise: neighbours in the teacher's
    embeddings, top 15, p 0.4) and `bertlite distill --augmented` do, here on the split the benchmark trains on (so
    that no held-out sentence is augmented), with the run's seed. Made once per (seed, N) and shared by the depths."""
    from bertlite.augmentation import EmbeddingNeighbours, WordAugmenter, augment_dataset
    from bertlite.augmentation.dataset import append_soft_target_examples

    key = ("augmented", seed, variants)
    if key not in setup:
        neighbours = EmbeddingNeighbours.from_model(setup["teacher"], setup["tokenizer"], AUGMENT["top_k"])
        augmenter = WordAugmenter(setup["tokenizer"], neighbours, None, variants, AUGMENT["probability"], seed)
        extra = augment_dataset(setup["dsd"]["train"], augmenter, desc="Augmenting")
        setup[key] = append_soft_target_examples(setup["train"], extra, setup["tokenizer"], max_length=MAX_LENGTH,
                                                 desc="Tokenizing augmented")
    return setup[key]


def transfer_count(job: dict, labelled: int) -> int:
    """Transfer sentences a candidate adds: transfer_examples, or as many as the labelled examples (the job's default)."""
    return (job.get("transfer_examples") or labelled) if job.get("transfer_data") else 0


def run_bertlite(setup: dict, depth: int, seed: int, fields: dict, steps: int | None, job: dict | None = None) -> torch.nn.Module:
    with tempfile.TemporaryDirectory(prefix="bench-peers-bl-") as tmp:
        config = defaults_config(tmp, seed, fields, steps)
        student = fresh_student(setup, depth, seed)
        trainer = DistillationTrainer(model=student, teacher_model=setup["teacher"], args=config, train_dataset=training_data(setup, seed, job or {}),
                                      data_collator=DataCollatorWithPadding(setup["tokenizer"]))
        trainer.train()
    return trainer.model


def run_sft(setup: dict, depth: int, seed: int, steps: int | None) -> torch.nn.Module:
    """Labels only, from the distilled students' own start, with the defaults' optimisation settings."""
    with tempfile.TemporaryDirectory(prefix="bench-peers-sft-") as tmp:
        d = defaults_config(tmp, seed, SFT, steps)
        args = TrainingArguments(output_dir=tmp, num_train_epochs=d.num_train_epochs, max_steps=d.max_steps, learning_rate=d.learning_rate,
                                 per_device_train_batch_size=d.per_device_train_batch_size, warmup_steps=d.warmup_steps,
                                 weight_decay=d.weight_decay, train_sampling_strategy=d.train_sampling_strategy, eval_strategy="no",
                                 save_strategy="no", logging_steps=100, seed=seed, report_to="none", disable_tqdm=True)
        student = fresh_student(setup, depth, seed)
        trainer = Trainer(model=student, args=args, train_dataset=setup["train"], data_collator=DataCollatorWithPadding(setup["tokenizer"]))
        trainer.train()
    return trainer.model


def own_steps(recipe: str, fields: dict, steps_per_epoch: int) -> int:
    """Optimizer steps of a recipe at its own default length (what Trainer or TextBrewer would run)."""
    if recipe == "peer":
        return PEER["epochs"] * steps_per_epoch
    config = defaults_config(tempfile.gettempdir(), 0, fields, None)
    if config.max_steps and config.max_steps > 0:
        return config.max_steps
    return math.ceil(config.num_train_epochs * steps_per_epoch)


# ----- candidates, cache -----------------------------------------------------------------------------------------
TRANSFER_FIELDS = ("transfer_data", "transfer_examples")  # the job fields a candidate may set: its training data
# augment_variants=N: the script's own field (`bertlite augment` writes a folder; here the variants are made in
# memory from the split the benchmark trains on); the augmentation's other settings are bertlite augment's defaults.
AUGMENT = {"top_k": 15, "probability": 0.4}


def parse_candidate(text: str) -> tuple[str, dict, dict, str]:
    """NAME:field=value,field=value -> (name, typed training/loss fields, typed transfer-set fields, the spec in its
    canonical form: the typed values, sorted by field, so that `temperature=4,logit_weight=1` and
    `logit_weight=1.0,temperature=4.0` are the same recipe and find the same cached runs)."""
    from bench_distill import parse_overrides  # the same FIELD=VALUE parsing as `bench_distill.py --set`

    name, _, spec = text.partition(":")
    if not name or name in BUILTIN or not spec:
        raise SystemExit(f"--candidate {text!r}: expected NAME:field=value,... with a NAME other than {', '.join(BUILTIN)}")
    pairs = spec.split(",")
    augment = [p for p in pairs if p.partition("=")[0] == "augment_variants"]
    try:
        config, job = parse_overrides([p for p in pairs if p not in augment])
        if augment:
            job["augment_variants"] = int(augment[-1].partition("=")[2])
    except ValueError:
        raise SystemExit(f"--candidate {text!r}: augment_variants must be a whole number") from None
    except SystemExit as err:
        raise SystemExit(f"--candidate {text!r}: {err}") from None
    if augment and not (job["augment_variants"] >= 1 and config.get("max_steps", 0) > 0):
        # The cache key holds the run's steps before anything is augmented, and the number of variants a sentence
        # gets is known only after: so the candidate fixes its length.
        raise SystemExit(f"--candidate {text!r}: augment_variants needs a whole number >= 1 and max_steps")
    if augment and job.get("transfer_data"):
        raise SystemExit(f"--candidate {text!r}: augment_variants or transfer_data, not both")
    if set(job) - {*TRANSFER_FIELDS, "augment_variants"}:
        raise SystemExit(f"--candidate {text!r}: only training/loss fields, augment_variants and {', '.join(TRANSFER_FIELDS)} "
                         f"can change here, not {sorted(set(job) - {*TRANSFER_FIELDS, 'augment_variants'})}")
    if job.get("transfer_examples") and not job.get("transfer_data"):
        raise SystemExit(f"--candidate {text!r}: transfer_examples needs transfer_data")
    return name, config, job, ",".join(f"{field}={value}" for field, value in sorted({**config, **job}.items()))


# What makes the `defaults` recipe: its cached runs are keyed by these values, so a run made under earlier defaults is
# never reported as today's (issue 18 changed them).
DEFAULT_FIELDS = ("temperature", "logit_weight", "hard_label_weight", "embedding_weight", "hidden_weight", "attention_weight",
                  "layer_loss_reduction", "layer_map", "hidden_loss", "num_train_epochs", "learning_rate",
                  "per_device_train_batch_size", "warmup_steps", "weight_decay", "train_sampling_strategy")


# Loss options added after the stored runs were keyed: part of the key only when the defaults turn them on, so that
# the stored runs (made with them off) keep their keys and a default that turns one on is never matched to them.
LATER_DEFAULT_FIELDS = ("relation_weight",)


def defaults_spec() -> str:
    config = defaults_config(tempfile.gettempdir(), 0, {}, None)
    names = DEFAULT_FIELDS + tuple(name for name in LATER_DEFAULT_FIELDS if getattr(config, name))
    return ",".join(f"{name}={getattr(config, name)}" for name in names)


def cache_key(recipe: str, spec: str, depth: int, seed: int, steps: int, data: str) -> str:
    return f"{recipe}{'[' + spec + ']' if spec else ''}|d{depth}|s{seed}|{steps}steps|{data}"


def load_results(path: str) -> dict:
    """Cached runs, each under its key with the candidate's spec made canonical (`parse_candidate`): files written
    before keys were canonical hold the spec as it was typed."""
    with open(path) as f:
        stored = json.load(f)
    canonical = {}
    results = {}
    for key, run in stored.items():
        if run.get("recipe") not in (None, *BUILTIN) and run.get("spec"):
            if run["spec"] not in canonical:
                canonical[run["spec"]] = parse_candidate(f"{run['recipe']}:{run['spec']}")[3]
            key = cache_key(run["recipe"], canonical[run["spec"]], run["depth"], run["seed"], run["steps"], run["data"])
            run = {**run, "spec": canonical[run["spec"]], "key": key}
        results.setdefault(key, run)
    return results


def eval_splits(dsd) -> list[str]:
    """validation, test and, with --holdout, holdout: every split that no student trains on."""
    return [split for split in dsd if split != "train"]


def score(model: torch.nn.Module, tokenizer, dsd) -> tuple[dict, dict]:
    """Accuracy on every evaluation split, measured once when the model is trained, and which sentences it got
    right ("0"/"1" per sentence, in the split's order): the paired intervals resample them."""
    accuracy, correct = {}, {}
    for split in eval_splits(dsd):
        hits = (predict(model.eval(), tokenizer, dsd[split], desc=False).argmax(-1) == torch.tensor(dsd[split]["label"])).tolist()
        accuracy[split] = sum(hits) / len(hits)
        correct[split] = "".join("1" if h else "0" for h in hits)
    return accuracy, correct


def save_json(path: str, data: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, path)  # a Ctrl-C never leaves half a cache


# ----- report ------------------------------------------------------------------------------------------------------
def fmt(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:  # no spread to show, and 0.00 would read as a measured one
        return f"{100 * values[0]:.2f} (1 seed)"
    return f"{100 * statistics.mean(values):.2f} ± {100 * statistics.stdev(values):.2f}"


def paired(rows: dict, recipe: str, other: str, split: str) -> str:
    """Per-seed difference recipe − other (points) over the seeds both have, then their mean ± std and, where the
    runs kept their per-sentence results, a 95% interval of the mean difference."""
    seeds = sorted(set(rows.get(recipe, {})) & set(rows.get(other, {})))
    if recipe == other or not seeds:
        return "–"
    diffs = [rows[recipe][s]["acc"] - rows[other][s]["acc"] for s in seeds]
    each = " / ".join(f"{100 * d:+.2f}" for d in diffs)
    interval = paired_interval([rows[recipe][s] for s in seeds], [rows[other][s] for s in seeds], split)
    if len(diffs) == 1:
        return each + interval
    return f"{100 * statistics.mean(diffs):+.2f} ± {100 * statistics.stdev(diffs):.2f} ({each}){interval}"


def paired_interval(runs: list[dict], others: list[dict], split: str) -> str:
    """95% bootstrap interval of the mean paired difference, resampling the sentences of the split (the same draw
    for every seed) and the seeds. The std over seeds measures training noise only: with ~850 sentences, two
    students that disagree on one in ten of them differ by about ±1 point by the draw of the sentences alone, which
    no number of seeds averages away."""
    import numpy as np

    if not all(split in r.get("correct", {}) for r in runs + others):
        return ""
    diff = np.array([[int(a) - int(b) for a, b in zip(r["correct"][split], o["correct"][split])] for r, o in zip(runs, others)])
    rng = np.random.default_rng(0)
    sentences = rng.integers(0, diff.shape[1], (BOOTSTRAP, diff.shape[1]))
    seeds = rng.integers(0, diff.shape[0], (BOOTSTRAP, diff.shape[0]))
    per_seed = np.stack([diff[:, idx].mean(axis=1) for idx in sentences])  # (resample, seed)
    means = np.take_along_axis(per_seed, seeds, axis=1).mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return f" [{100 * low:+.2f}, {100 * high:+.2f}]"


def table(results: dict, recipes: list[tuple[str, str]], depths: list[int], modes: list[str], split: str, data: str,
          steps_for: dict) -> str:
    lines = [f"| student | length | recipe | steps | {split} accuracy per seed | mean ± std | − peer, paired per seed [95% interval] | "
             "− sft, paired per seed [95% interval] | training wall (min, mean) |", "|---|---|---|---|---|---|---|---|---|"]
    for depth in depths:
        for mode in modes:
            rows = {recipe: {e["seed"]: {**e, "acc": e["accuracy"][split]} for e in results.values()
                             if e.get("recipe") == recipe and e.get("spec") == spec and e["depth"] == depth
                             and e["steps"] == steps_for[(recipe, mode)] and e["data"] == data}
                    for recipe, spec in recipes}
            for recipe, _ in recipes:
                found = rows[recipe]
                if not found:
                    continue
                seeds = sorted(found)
                accs = [found[s]["acc"] for s in seeds]
                per_seed = " / ".join(f"{s}: {100 * a:.2f}" for s, a in zip(seeds, accs))
                wall = statistics.mean(found[s]["wall_s"] for s in seeds) / 60
                lines.append(f"| {depth} layers | {mode} | {recipe} | {steps_for[(recipe, mode)]} | {per_seed} | {fmt(accs)} | "
                             f"{paired(rows, recipe, 'peer', split)} | {paired(rows, recipe, 'sft', split)} | {wall:.1f} |")
    return "\n".join(lines)


# ----- main --------------------------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default=None, metavar="DIR",
                        help="fine-tuned teacher folder, used as is; if it does not exist the benchmark teacher is fine-tuned into it "
                             "(all-MiniLM-L6-v2, 2 epochs, lr 1e-4, seed 42; on the --max-train-examples slice if given, without the "
                             "--holdout sentences; default bench-out/teacher, or bench-out/teacher-holdoutN)")
    parser.add_argument("--holdout", type=int, default=0, metavar="N",
                        help="hold N training sentences out of every training run, the teacher's included, as a third evaluation "
                             "split ('holdout') that no model trains or selects a checkpoint on; choose settings on it with --split holdout")
    parser.add_argument("--depths", default="3,2", help="student depths, comma-separated (default 3,2)")
    parser.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds (default 0,1,2,3,4)")
    parser.add_argument("--recipes", default="peer,defaults,sft", help="built-in recipes to run: peer, defaults, sft")
    parser.add_argument("--candidate", action="append", default=[], metavar="NAME:field=value,...",
                        help="a bertlite recipe: the defaults with DistillationConfig fields changed; repeatable")
    parser.add_argument("--equal-steps", action="store_true", help="also run every recipe for one common number of optimizer steps")
    parser.add_argument("--equal-length", type=int, default=None, metavar="STEPS",
                        help="that common number of steps (default: the peer's own length, 3 epochs); a whole number of epochs for the peer")
    parser.add_argument("--lengths", default=None, help="which lengths to run and show: 'own', 'equal' or 'own,equal' "
                                                        "(default: own, or own,equal with --equal-steps)")
    parser.add_argument("--split", default="validation", choices=("validation", "test", "holdout"),
                        help="the split shown (all are measured and cached; show test once, for the setting chosen on "
                             "validation or holdout)")
    parser.add_argument("--output-dir", default="bench-out/peers")
    parser.add_argument("--merge", action="append", default=[], metavar="JSON", help="add the runs cached in another results.json")
    parser.add_argument("--max-train-examples", type=int, default=None, help="a slice of the training data (smoke runs)")
    parser.add_argument("--max-eval-examples", type=int, default=None, help="a slice of the evaluation split (smoke runs)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--report-only", action="store_true", help="print the table of the cached runs, train nothing")
    args = parser.parse_args()
    if args.split == "holdout" and not args.holdout:
        raise SystemExit("--split holdout needs --holdout N")
    args.teacher = args.teacher or ("bench-out/teacher" + (f"-holdout{args.holdout}" if args.holdout else ""))
    torch.set_num_threads(args.threads)
    depths = [int(d) for d in args.depths.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    recipes = [(r.strip(), defaults_spec() if r.strip() == "defaults" else "") for r in args.recipes.split(",") if r.strip()]
    unknown = [r for r, _ in recipes if r not in BUILTIN]
    if unknown:
        raise SystemExit(f"--recipes: unknown {unknown}; use {', '.join(BUILTIN)} (and --candidate for others)")
    candidates = {}
    for text in args.candidate:
        name, fields, job, spec = parse_candidate(text)
        candidates[name] = (fields, job)
        recipes.append((name, spec))
    if any(r == "peer" for r, _ in recipes) and (problem := peer_import_error()):
        print(f"TextBrewer is not available ({problem}); skipping the peer (install it with: pip install 'bertlite[peers]').")
        recipes = [(r, s) for r, s in recipes if r != "peer"]

    os.makedirs(args.output_dir, exist_ok=True)
    cache_path = os.path.join(args.output_dir, "results.json")
    results = load_results(cache_path) if os.path.isfile(cache_path) else {}
    for other in args.merge:
        results.update({k: v for k, v in load_results(other).items() if k not in results})
    command = recorded_command("bench_peers.py", sys.argv[1:])

    dsd, _ = load_task(TASK, max_train_examples=args.max_train_examples, max_eval_examples=args.max_eval_examples,
                       holdout_examples=args.holdout or None)
    data = f"train{len(dsd['train'])}-" + "-".join(f"{s}{len(dsd[s])}" for s in eval_splits(dsd))
    steps_per_epoch = math.ceil(len(dsd["train"]) / BATCH)
    modes = ["own"] + (["equal"] if args.equal_steps else [])
    if args.lengths:  # e.g. only the peer's length, when the recipe under test already trains that long
        modes = [m.strip() for m in args.lengths.split(",") if m.strip()]
        if not modes or set(modes) - {"own", "equal"}:
            raise SystemExit(f"--lengths {args.lengths!r}: use own, equal or own,equal")
    steps_for = {}
    for recipe, _ in recipes:
        fields, job = candidates.get(recipe, (SFT if recipe == "sft" else {}, {}))
        epoch_steps = math.ceil((len(dsd["train"]) + transfer_count(job, len(dsd["train"]))) / BATCH)  # with its transfer set
        steps_for[(recipe, "own")] = own_steps(recipe, fields, epoch_steps)
        steps_for[(recipe, "equal")] = args.equal_length or PEER["epochs"] * steps_per_epoch

    setup = None
    if not args.report_only:
        teacher_path = args.teacher
        if not os.path.isfile(os.path.join(args.teacher, "config.json")):  # an existing folder is used as is, never refit
            print(f"No teacher in {args.teacher}: fine-tuning the benchmark teacher (2 epochs, lr 1e-4, seed 42).")
            # Pinned, not the current default: every stored run (docs/results/peers-runs.json) used this teacher.
            teacher_path = finetuned_teacher("minilm", TASK, args.teacher, epochs=2.0, learning_rate=1e-4, seed=42,
                                             max_train_examples=args.max_train_examples, holdout_examples=args.holdout or None)
        tokenizer = load_tokenizer(teacher_path)
        teacher = AutoModelForSequenceClassification.from_pretrained(teacher_path).eval()
        setup = {"teacher": teacher, "tokenizer": tokenizer, "dsd": dsd, "train": tokenize(dsd, tokenizer, MAX_LENGTH)["train"]}
        teacher_key = f"teacher|{data}"
        if teacher_key not in results:
            acc, correct = score(teacher, tokenizer, dsd)
            results[teacher_key] = {"key": teacher_key, "accuracy": acc, "correct": correct, "path": checkout_relative(teacher_path)}
            save_json(cache_path, results)
        print(f"teacher {teacher_path}: {args.split} accuracy {100 * results[teacher_key]['accuracy'][args.split]:.2f}", flush=True)

        for seed in seeds:  # seed-major: an interrupted run still has every recipe for the first seeds
            for depth in depths:
                for mode in modes:
                    for recipe, spec in recipes:
                        steps = steps_for[(recipe, mode)]
                        key = cache_key(recipe, spec, depth, seed, steps, data)
                        if key in results:
                            continue
                        start = time.perf_counter()
                        if recipe == "peer":
                            model = run_peer(setup, depth, seed, steps if mode == "equal" else None)
                        elif recipe == "sft":
                            model = run_sft(setup, depth, seed, steps if mode == "equal" else None)
                        else:
                            fields, job = candidates.get(recipe, ({}, {}))
                            model = run_bertlite(setup, depth, seed, fields, steps if mode == "equal" else None, job)
                        wall = time.perf_counter() - start
                        acc, correct = score(model, tokenizer, dsd)
                        results[key] = {"key": key, "recipe": recipe, "spec": spec, "depth": depth, "seed": seed, "steps": steps,
                                        "data": data, "accuracy": acc, "correct": correct, "wall_s": round(wall, 1), "command": command}
                        save_json(cache_path, results)
                        print(f"{recipe:>10s} {depth} layers seed {seed} {mode:5s} ({steps} steps): {args.split} accuracy "
                              f"{100 * acc[args.split]:.2f}, {wall / 60:.1f} min", flush=True)

    teacher_acc = results.get(f"teacher|{data}", {}).get("accuracy", {}).get(args.split)
    print(f"\n{command}\n")
    if teacher_acc is not None:
        print(f"Teacher ({args.teacher}): {args.split} accuracy {100 * teacher_acc:.2f}\n")
    print(table(results, recipes, depths, modes, args.split, data, steps_for))
    print(f"\nCached runs: {cache_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
