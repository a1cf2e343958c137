"""`bertlite benchmark`: several models of one task measured side by side in one process, and the report.

    report = benchmark_models([("teacher", "out/teacher"), ("student int8", "out/student-int8")], "rotten_tomatoes")
    report.write("out/benchmark")        # report.md, report.json, pareto.png

For every model: the task's metric on test and validation (`bertlite.metrics`), parameters, size of the weight
files, CPU latency at batch 1 and batch 8 × 128 tokens (`evaluation.compare_latency`: interleaved rounds, medians,
so a busy neighbour slows every model alike), throughput, and each figure's ratio to the first model (the teacher).
The keys of a row are those of metrics.json (`test_accuracy`, `size_mb`, `latency_ms_b8`, `speedup_b8`, ...), so the
model card reads a folder's own row from the report.json it holds.
"""

from __future__ import annotations

import math
import os
import platform
from dataclasses import dataclass, field

from .errors import BertliteError
from .record import VERSION, write_json, write_text

REPORT_JSON, REPORT_MD, PARETO_PNG = "report.json", "report.md", "pareto.png"
BATCHES = (1, 8)
SEQ_LEN = 128
STAGES_DIR = "stages"  # a compress run: DIR/stages/NN-name/ per stage, the final model in DIR/final (or DIR)
FINAL_DIR = "final"
BASELINE_STAGE = "baseline"  # its folder holds the baseline's steps (shrunk/, pruned/, ..., finetuned/, int8/)
BASELINE_FP32, BASELINE_INT8 = "finetuned", "int8"  # the baseline's model folders: fine-tuned, then quantized
BASELINE_LABEL = "shrink and fine-tune, same shape"
# Each finished stage of a compress run holds this marker; its "label" names the stage's model in the run's report
# ("teacher" for the teacher's fine-tune), so that `benchmark --from DIR` names every model as compress's own
# evaluation stage does, and reports of the two can be read side by side (scripts/compress_seeds.py).
STAGE_MARKER = "bertlite_stage.json"
TEACHER_LABEL = "teacher"
TEACHER_STAGE = "teacher_finetune"  # compress's stage key for the fine-tuned teacher


@dataclass
class ModelResult:
    """One model's measurements. `quality` holds `<split>_<metric>` keys (test_accuracy, validation_f1, ...)."""

    label: str
    path: str | None
    quality: dict = field(default_factory=dict)
    parameters: int | None = None
    size_mb: float | None = None
    latency_ms: dict = field(default_factory=dict)  # batch size -> median ms
    int8: bool = False
    role: str = "model"  # "model", or "baseline" (--baseline: compared, never the reference)
    shape: dict = field(default_factory=dict)  # layers, hidden_size (the card's "Layers × hidden size" row)

    def throughput(self, batch: int) -> float | None:
        """Sentences per second at this batch size (of SEQ_LEN tokens)."""
        ms = self.latency_ms.get(batch)
        return 1000.0 * batch / ms if ms else None

    def row(self, first: "ModelResult") -> dict:
        """The flat record of report.json: measurements, then ratios to the first model."""
        out = {"label": self.label, "path": self.path, "role": self.role, "int8": self.int8, **self.quality,
               **self.shape, "parameters": self.parameters, "size_mb": _round(self.size_mb, 2)}
        for batch in sorted(self.latency_ms):
            out[f"latency_ms_b{batch}"] = _round(self.latency_ms[batch], 3)
            out[f"throughput_b{batch}"] = _round(self.throughput(batch), 2)
        for key, value in self.quality.items():
            out[f"{key}_of_first"] = _ratio(value, first.quality.get(key))
        out["parameters_of_first"] = _ratio(self.parameters, first.parameters)
        out["smaller"] = _ratio(first.size_mb, self.size_mb)
        for batch in sorted(self.latency_ms):
            out[f"speedup_b{batch}"] = _ratio(first.latency_ms.get(batch), self.latency_ms[batch])
        return out


def _round(value, digits):
    return None if value is None else round(float(value), digits)


def _ratio(a, b) -> float | None:
    if a is None or not b or (isinstance(a, float) and math.isnan(a)):
        return None
    return round(a / b, 4)


@dataclass
class Report:
    task: str
    main: str  # the quality key the report ranks by, e.g. "test_accuracy"
    results: list[ModelResult]
    setup: dict = field(default_factory=dict)  # threads, OpenMP wait policy, rounds, machine, command
    metric_name: str = "accuracy"

    @property
    def rows(self) -> list[dict]:
        first = self.results[0]
        return [r.row(first) for r in self.results]

    def to_dict(self, output_dir: str | None = None) -> dict:
        """report.json. Written into a model folder that is one of the measured models, that row gets "here": true,
        so that the folder's model card finds its own row wherever the folder is later moved or copied."""
        rows = self.rows
        for row in rows:
            if output_dir and row["path"] and os.path.realpath(row["path"]) == os.path.realpath(output_dir):
                row["here"] = True
        return {"task": self.task, "main": self.main, "metric_name": self.metric_name, "setup": self.setup,
                "models": rows, "bertlite_version": VERSION}

    # ----- rendering -----
    def markdown_table(self) -> str:
        # Every test metric of the task, and the main one on the other splits (report.json holds them all).
        metric = self.main.split("_", 1)[1]
        quality = [k for k in self.results[0].quality if k.startswith("test_") or k.endswith(f"_{metric}")]
        head = ["Model", *(_label(k) for k in quality), f"{_label(self.main)} of first", "Parameters", "Size (MB)",
                "Smaller", *(f"Latency b{b} (ms)" for b in BATCHES), *(f"Faster b{b}" for b in BATCHES),
                f"Sentences/s b{BATCHES[-1]}"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in self.rows:
            name = row["label"] + (" (baseline)" if row["role"] == "baseline" else "") + (" [int8]" if row["int8"] else "")
            cells = [name.replace("|", "\\|"), *(_num(row.get(k), "{:.4f}") for k in quality),
                     _num(row.get(f"{self.main}_of_first"), "{:.1%}"), _num(row["parameters"], "{:,}"),
                     _num(row["size_mb"], "{:.1f}"), _num(row["smaller"], "{:.2f}×"),
                     *(_num(row.get(f"latency_ms_b{b}"), "{:.1f}") for b in BATCHES),
                     *(_num(row.get(f"speedup_b{b}"), "{:.2f}×") for b in BATCHES),
                     _num(row.get(f"throughput_b{BATCHES[-1]}"), "{:.1f}")]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def setup_text(self) -> str:
        s = self.setup
        text = (f"Measured in one process by `bertlite benchmark` (bertlite {VERSION}) on {s.get('machine', 'an unrecorded machine')}: "
                f"{s.get('threads')} thread(s), OMP_WAIT_POLICY {s.get('omp_wait_policy')}, torch {s.get('torch')}. "
                f"Latency: random token ids, batch 1 and batch {BATCHES[-1]} × {s.get('seq_len', SEQ_LEN)} tokens, "
                f"{s.get('rounds')} interleaved rounds of {s.get('repeats')} calls per model, median"
                + (f"; int8 models timed through {s['compile']}" if s.get("compile") else "") + ". "
                f"Quality: {self.metric_name} on the task's {', '.join(s.get('splits', []))} split(s) "
                f"({', '.join(f'{k}: {v}' for k, v in s.get('examples', {}).items())} examples). "
                "Ratios are to the first model; sizes count the weight files.")
        if s.get("command"):
            text += f"\n\nCommand: `{s['command']}`"
        return text

    def markdown(self, plot: bool = True) -> str:
        parts = [f"# Benchmark: {self.task}", "", self.markdown_table(), "", self.setup_text()]
        if plot:
            parts += ["", f"![{_label(self.main)} against batch-{BATCHES[-1]} latency; marker area is size on disk]"
                          f"({PARETO_PNG})"]
        return "\n".join(parts) + "\n"

    def print_summary(self, log=print) -> None:
        log(self.markdown_table())
        log(self.setup_text())

    def write(self, output_dir: str, plot: bool = True) -> dict[str, str]:
        """Write report.json, report.md and (plot=True) pareto.png into `output_dir`; returns their paths."""
        os.makedirs(output_dir, exist_ok=True)
        paths = {"json": write_json(os.path.join(output_dir, REPORT_JSON), self.to_dict(output_dir))}
        if plot:
            paths["png"] = write_pareto_plot(self, os.path.join(output_dir, PARETO_PNG))
        paths["md"] = write_text(os.path.join(output_dir, REPORT_MD), self.markdown(plot=plot))
        return paths

    @classmethod
    def from_dict(cls, values: dict) -> "Report":
        results = []
        for row in values.get("models") or []:
            latency = {int(k[len("latency_ms_b"):]): v for k, v in row.items() if k.startswith("latency_ms_b") and v}
            quality = {k: v for k, v in row.items() if k.split("_", 1)[0] in ("test", "validation") and not k.endswith("_of_first")}
            results.append(ModelResult(label=row["label"], path=row.get("path"), quality=quality,
                                       parameters=row.get("parameters"), size_mb=row.get("size_mb"), latency_ms=latency,
                                       int8=bool(row.get("int8")), role=row.get("role", "model"),
                                       shape={k: row[k] for k in ("layers", "hidden_size") if k in row}))
        if not results:
            raise BertliteError("The benchmark report lists no model.")
        return cls(task=values.get("task"), main=values.get("main"), results=results, setup=values.get("setup") or {},
                   metric_name=values.get("metric_name", "accuracy"))

    @classmethod
    def read(cls, folder: str) -> "Report | None":
        """The report in `folder` (its report.json), or None when it has none."""
        import json

        path = os.path.join(folder, REPORT_JSON)
        if not os.path.isfile(path):
            return None
        try:
            with open(path) as f:
                return cls.from_dict(json.load(f))
        except (ValueError, KeyError, TypeError) as err:
            raise BertliteError(f"{path} is not a bertlite benchmark report: {err}") from err


def _label(key: str) -> str:
    split, _, metric = key.partition("_")
    return f"{split.capitalize()} {metric.replace('_', ' ')}"


def _num(value, fmt: str, missing: str = "—") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    return fmt.format(value)


# ----- the plot -----
def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (lower x = latency, higher y = quality), by x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def write_pareto_plot(report: Report, path: str, batch: int = BATCHES[-1]) -> str:
    """Test metric against latency, marker area proportional to size on disk, every model labelled, the frontier
    drawn. matplotlib is imported here (Agg: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in report.results if r.latency_ms.get(batch) and r.quality.get(report.main) is not None
                and not math.isnan(r.quality[report.main])]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    if measured:
        xs = [r.latency_ms[batch] for r in measured]
        ys = [r.quality[report.main] for r in measured]
        largest = max((r.size_mb or 0) for r in measured) or 1.0
        areas = [40 + 1200 * (r.size_mb or 0) / largest for r in measured]
        colors = ["tab:orange" if r.role == "baseline" else "tab:blue" for r in measured]
        ax.scatter(xs, ys, s=areas, c=colors, alpha=0.55, edgecolors="black", linewidths=0.6, zorder=3)
        front = pareto_front(list(zip(xs, ys)))
        ax.plot([xs[i] for i in front], [ys[i] for i in front], "--", color="tab:green", zorder=2, label="Pareto frontier")
        for r, x, y in zip(measured, xs, ys):
            size = f", {r.size_mb:.1f} MB" if r.size_mb is not None else ""
            ax.annotate(f"{r.label}{size}", (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8)
        ax.set_xscale("log")
        ax.margins(x=0.2, y=0.15)  # room for the labels at the edges
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel(f"CPU latency, ms (batch {batch} × {report.setup.get('seq_len', SEQ_LEN)} tokens, log scale)")
    ax.set_ylabel(_label(report.main))
    ax.set_title(f"{report.task}: quality vs latency (marker area ∝ size on disk)", fontsize=10)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return write_text(path, buffer.getvalue())


# ----- measuring -----
def compress_run_models(folder: str) -> list[tuple[str, str]]:
    """(label, folder) of every model of a compress run, as compress's evaluation stage measures them: the teacher,
    then DIR/stages/NN-name/ in order (folders without a task model, such as an augmentation stage's data or a
    general-distillation encoder, are left out), each under its marker's label (the folder name for runs without
    one). DIR/final is an exact copy of the last stage's model: it takes that row's place (the report written into it
    then finds its own row); a final model that is not a copy gets a row of its own."""
    stages_dir = os.path.join(folder, STAGES_DIR)
    if not os.path.isdir(stages_dir):
        raise BertliteError(f"{folder!r} is not a compress run: it has no {STAGES_DIR}/ folder (DIR/stages/NN-name/ per stage).")
    teacher, models, markers = [], [], []
    for name in sorted(os.listdir(stages_dir)):
        path = os.path.join(stages_dir, name)
        marker = read_stage_marker(path) or {}
        markers.append(marker)
        if not (os.path.isfile(os.path.join(path, "config.json")) and _is_classifier_folder(path)):
            continue
        # Markers written before labels were recorded (an older bertlite, then kept by a re-run that changed only
        # later stages) still name their stage: the fine-tuned teacher must not turn into a student row.
        label = marker.get("label") or (TEACHER_LABEL if marker.get("stage") == TEACHER_STAGE else name)
        (teacher if label == TEACHER_LABEL else models).append((label, path))
    if not teacher:  # no fine-tune stage: the run's teacher as given, which compress measured first
        source = next((m["settings"]["teacher"] for m in markers if isinstance(m.get("settings"), dict)
                       and m["settings"].get("teacher") and m.get("label")), None)
        teacher = [(TEACHER_LABEL, source)] if source else []
    final = next((p for p in (os.path.join(folder, FINAL_DIR), folder) if os.path.isfile(os.path.join(p, "config.json"))), None)
    if final is not None:
        if models and _same_model(models[-1][1], final):
            models[-1] = (models[-1][0], final)
        else:
            models.append((FINAL_DIR, final))
    models = teacher + models
    if not models:
        raise BertliteError(f"{stages_dir!r} holds no model folder (each stage folder needs a config.json).")
    return models


def read_stage_marker(folder: str) -> dict | None:
    """The marker of a finished compress stage, or None (the stage never finished, or the folder is not a stage)."""
    import json

    try:
        with open(os.path.join(folder, STAGE_MARKER)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _same_model(a: str, b: str) -> bool:
    """Both folders hold the same weights files, byte for byte (compress copies the last stage's model to final/)."""
    import filecmp

    def weights(path):
        return sorted(n for n in os.listdir(path) if n.endswith(".safetensors"))

    names = weights(a)
    return bool(names) and names == weights(b) and all(
        filecmp.cmp(os.path.join(a, n), os.path.join(b, n), shallow=False) for n in names)


def compress_run_baseline(folder: str) -> tuple[str, str] | None:
    """(label, folder) of a compress run's shrink-and-fine-tune baseline (its int8 model, else its fp32 one), or None
    when the run has no baseline stage."""
    stages_dir = os.path.join(folder, STAGES_DIR)
    for name in sorted(os.listdir(stages_dir)) if os.path.isdir(stages_dir) else ():
        if name.endswith(f"-{BASELINE_STAGE}"):
            for step in (BASELINE_INT8, BASELINE_FP32):  # the baseline stage's last step folder
                path = os.path.join(stages_dir, name, step)
                if os.path.isfile(os.path.join(path, "config.json")):
                    return BASELINE_LABEL, path
    return None


def compress_run_output(folder: str) -> str:
    """Where the report of a compress run goes: beside the final model, so that its card embeds it."""
    final = os.path.join(folder, FINAL_DIR)
    return final if os.path.isdir(final) else folder


def _load(label: str, source, compile: str | None):
    """(eager model, timed model, tokenizer, path or None, int8). The timed model is the compiled one with
    compile="pt2e" for int8 folders; the metric is always computed on the eager model the folder was checked with."""
    from .hub.load import load_compressed
    from .loading import is_int8_folder, resolve_model_name

    if not isinstance(source, (str, os.PathLike)):
        model, tokenizer = source if isinstance(source, tuple) else (source, None)
        return model.eval(), model, tokenizer, None, bool(getattr(model, "bertlite_quantization", None))
    path = resolve_model_name(os.fspath(source))
    if not os.path.isdir(path):
        raise BertliteError(f"{label}: {source!r} is not a model folder.")
    _check_classifier(label, path)
    model, tokenizer = load_compressed(path, return_tokenizer=True)
    int8 = is_int8_folder(path)
    timed = load_compressed(path, compile=compile) if compile and int8 else model
    return model.eval(), timed, tokenizer, path, int8


def _architecture(path: str) -> str:
    from .hub.folder import ModelFolder

    return ModelFolder.inspect(path).architecture or "no architecture"


def _is_classifier_folder(path: str) -> bool:
    return _architecture(path).endswith("ForSequenceClassification")


def _check_classifier(label: str, path: str) -> None:
    arch = _architecture(path)
    if not arch.endswith("ForSequenceClassification"):
        raise BertliteError(f"{label} ({path}) is not a sequence classifier ({arch}): benchmark models fine-tuned on the "
                            "task, e.g. the teacher folder `bertlite distill` writes and its students.")


def _parameters(model, path: str | None) -> int | None:
    """None when neither the files nor the module say (an ONNX graph keeps its weights inside)."""
    from .evaluation import count_parameters

    if path:
        from .hub.folder import ModelFolder

        # Counted from the weight files, as the model card counts them (int8 weights are buffers, not Parameters).
        counted = ModelFolder.inspect(path).num_parameters
        if counted:
            return counted
    return count_parameters(model) or None


def _machine() -> str:
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{name} ({os.cpu_count()} logical CPUs)"


def benchmark_models(models, task: str, *, threads: int | None = None, **options) -> Report:
    """Measure `models`, a list of (label, folder) or (label, (model, tokenizer)), the first being the reference
    (the teacher), on `task`. Options: splits, baseline (one more (label, folder) measured alike and marked as the
    baseline), compile="pt2e" (int8 folders timed through PT2E + inductor), latency (False: quality, size and
    parameters only), rounds, repeats, max_eval_examples, batch_size, max_length, tokenizer, command, log. threads: torch threads while measuring (default: as set; the
    process's own count is restored afterwards). Returns the `Report`; `report.write(dir)` writes report.md,
    report.json and pareto.png."""
    import torch

    before = torch.get_num_threads()
    try:
        if threads:
            torch.set_num_threads(threads)
        return _benchmark_models(models, task, **options)
    finally:
        torch.set_num_threads(before)


def _benchmark_models(models, task: str, *, splits=("test", "validation"), compile: str | None = None,
                      rounds: int = 5, repeats: int = 3, max_eval_examples: int | None = None, batch_size: int = 64,
                      max_length: int = 128, baseline=None, tokenizer=None, command: str | None = None,
                      latency: bool = True, log=print) -> Report:
    import torch

    from .data import load_task
    from .evaluation import compare_latency, folder_size_mb
    from .metrics import evaluate_model, metric_spec

    if not models:
        raise BertliteError("Give at least one model to benchmark.")
    if compile not in (None, "pt2e"):
        raise BertliteError(f"compile={compile!r}: the compiled path benchmark knows is 'pt2e'.")
    entries = [(label, source, "model") for label, source in models]
    if baseline is not None:
        entries.append((*baseline, "baseline"))
    labels = [label for label, _, _ in entries]
    if len(set(labels)) != len(labels):
        raise BertliteError(f"Two models have the same label ({', '.join(labels)}): give each its own.")
    dsd, info = load_task(task, max_eval_examples=max_eval_examples)
    spec = metric_spec(info)
    missing = [s for s in splits if s not in dsd]
    if missing:
        raise BertliteError(f"Task {task!r} has no {', '.join(missing)} split (it has {', '.join(dsd)}).")
    main = f"{splits[0]}_{spec.main}"
    setup = {"threads": torch.get_num_threads(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset (OpenMP default)"),
             "seq_len": SEQ_LEN, "batches": list(BATCHES), "rounds": rounds, "repeats": repeats, "compile": compile,
             "torch": torch.__version__, "machine": _machine(), "splits": list(splits),
             "examples": {s: len(dsd[s]) for s in splits}, "command": command}
    log(f"benchmark: {len(entries)} model(s) on {info.name}; {setup['threads']} thread(s), "
        f"OMP_WAIT_POLICY {setup['omp_wait_policy']}")

    results, timed = [], {}
    for label, source, role in entries:
        model, fast, tok, path, int8 = _load(label, source, compile)
        tok = tok or tokenizer
        if tok is None:
            raise BertliteError(f"{label} has no tokenizer: save one in its folder, or pass tokenizer=.")
        quality = {}
        for split in splits:
            values = evaluate_model(model, tok, dsd[split], spec, batch_size=batch_size, max_length=max_length,
                                    desc=f"{label} {split}")
            quality.update({f"{split}_{name}": value for name, value in values.items()})
        size = round(folder_size_mb(path), 2) if path else None
        config = getattr(model, "config", None)
        shape = {"layers": getattr(config, "num_hidden_layers", None), "hidden_size": getattr(config, "hidden_size", None)}
        results.append(ModelResult(label=label, path=path, quality=quality, parameters=_parameters(model, path),
                                   size_mb=size, int8=int8, role=role, shape={k: v for k, v in shape.items() if v}))
        timed[label] = fast
        log(f"  {label}: {main} {quality[main]:.4f}" + _num(results[-1].parameters, ", {:,} parameters", "")
            + _num(size, ", {:.1f} MB", ""))
    for batch in BATCHES if latency else ():
        log(f"  latency at batch {batch} × {SEQ_LEN} tokens ({rounds} interleaved rounds)...")
        latency = compare_latency(timed, batch_size=batch, seq_len=SEQ_LEN, rounds=rounds, repeats=repeats)
        for result in results:
            result.latency_ms[batch] = round(latency[result.label], 3)  # as report.json keeps it
    report = Report(task=info.name, main=main, results=results, setup=setup, metric_name=spec.display_name(spec.main))
    return report
