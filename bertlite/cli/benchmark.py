"""`bertlite benchmark MODEL [MODEL ...] --task X` (teacher first) or `bertlite benchmark --from DIR`: every model
measured in one process, written as report.md, report.json and pareto.png."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import BertliteError

HELP = "Measure models side by side (task metric, size, latency at batch 1 and 8, throughput) and write a report."


@dataclass
class BenchmarkArguments:
    models: list[str] = field(default_factory=list, metadata={
        "help": "Model folders (or aliases), the reference (teacher) first; ratios are to it. Can be given first, "
                "without the flag: bertlite benchmark TEACHER STUDENT ... --task X."})
    task: str = field(default=None, metadata={"help": "The task the models were trained for (rotten_tomatoes, a GLUE task, a local CSV...)."})
    from_dir: str = field(default=None, metadata={
        "help": "A `bertlite compress` output folder: benchmark DIR/stages/NN-name/ in order, then DIR/final. The "
                "report is written beside the final model (its card embeds it) unless --output_dir is given.",
        "aliases": ["--from"]})
    baseline: str = field(default=None, metadata={"help": "One more model measured alike and marked as the baseline (never the reference)."})
    output_dir: str = field(default=None, metadata={"help": "Where to write report.md, report.json and pareto.png (default: benchmark-<task>)."})
    compile: str = field(default=None, metadata={
        "help": "pt2e: time int8 folders through PT2E + inductor (the fastest CPU path; the metric is computed on the "
                "eager model). fp32 models always run eager.", "choices": ["pt2e"]})
    threads: int = field(default=None, metadata={"help": "torch threads for every model (default: torch's own choice)."})
    rounds: int = field(default=5, metadata={"help": "Interleaved latency rounds; the median over rounds is reported."})
    repeats: int = field(default=3, metadata={"help": "Calls per model per round."})
    max_eval_examples: int = field(default=None, metadata={"help": "Score on at most this many examples per split (quick looks; the report says how many)."})
    no_plot: bool = field(default=False, metadata={"help": "Do not draw pareto.png (no matplotlib needed)."})

    def __post_init__(self):
        if self.from_dir and self.models:
            raise BertliteError("Give model folders or --from DIR, not both.")
        if not self.from_dir and not self.models:
            raise BertliteError("Give the models to compare (teacher first): bertlite benchmark TEACHER STUDENT --task X, "
                                "or --from DIR for a compress run.")
        if self.from_dir and not os.path.isdir(self.from_dir):
            raise BertliteError(f"--from {self.from_dir!r} is not a folder.")
        if not self.task:
            raise BertliteError("--task is required: the task the models were trained for.")
        for name, value in (("--rounds", self.rounds), ("--repeats", self.repeats), ("--threads", self.threads or 1),
                            ("--max_eval_examples", self.max_eval_examples or 1)):
            if value < 1:
                raise BertliteError(f"{name} must be at least 1.")


DATACLASSES = (BenchmarkArguments,)
# `bertlite benchmark A B --task X`: the leading non-flag arguments are the models (see cli.parse_command).
POSITIONAL = "models"


def labels_for(paths: list[str]) -> list[tuple[str, str]]:
    """(label, path): the folder's name, made unique with its parent's when two folders share a name."""
    names = [os.path.basename(os.path.normpath(p)) or p for p in paths]
    out = []
    for path, name in zip(paths, names):
        if names.count(name) > 1:
            name = os.path.join(os.path.basename(os.path.dirname(os.path.normpath(path))), name)
        out.append((name, path))
    return out


def run(args: BenchmarkArguments) -> int:
    from ..benchmark import benchmark_models, compress_run_baseline, compress_run_models, compress_run_output
    from ..hub.metrics import invoked_command

    if args.from_dir:
        models = compress_run_models(args.from_dir)
        output_dir = args.output_dir or compress_run_output(args.from_dir)
    else:
        models = labels_for(args.models)
        output_dir = args.output_dir or f"benchmark-{os.path.splitext(os.path.basename(args.task))[0]}"
    baseline = labels_for([args.baseline])[0] if args.baseline else None
    if args.from_dir and baseline is None:  # the run's own shrink-and-fine-tune baseline, as compress measured it
        baseline = compress_run_baseline(args.from_dir)
    report = benchmark_models(models, args.task, compile=args.compile, threads=args.threads, rounds=args.rounds,
                              repeats=args.repeats, max_eval_examples=args.max_eval_examples, baseline=baseline,
                              command=invoked_command("benchmark"))
    paths = report.write(output_dir, plot=not args.no_plot)
    print()
    report.print_summary()
    print(f"\nWrote {', '.join(sorted(os.path.basename(p) for p in paths.values()))} to {output_dir}")
    return 0
