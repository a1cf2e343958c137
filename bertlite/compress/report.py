"""Evaluate every stage of a compress run and write report.json / report.md.

`evaluate_stages_and_write_report` is the one function `bertlite compress` calls for this; a fuller benchmark
(`bertlite benchmark --from DIR`) can take its place with the same arguments.
"""

from __future__ import annotations

import os

import torch

from ..errors import BertliteError
from ..record import write_json

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
BATCHES = (8, 1)
SEQ_LEN = 128


def _load_stage(folder: str, is_teacher: bool, compile: str | None):
    """(eager model for the metric, model timed for latency): the teacher as saved; a stage through
    load_compressed, the loader users are told to use (int8 folders optionally compiled, e.g. PT2E)."""
    from ..hub.load import load_compressed
    from ..loading import load_model

    if is_teacher:
        model = load_model(folder, head="classifier", require_head=True)
        return model.eval(), model.eval()
    model = load_compressed(folder).eval()
    timed = model
    if compile and getattr(model, "bertlite_quantization", None) is not None:
        timed = load_compressed(folder, compile=compile).eval()
    return model, timed


def evaluate_stages_and_write_report(models: list[tuple[str, str]], task: str, output_dir: str, *,
                                     max_eval_examples: int | None = None, max_length: int = 128,
                                     latency: bool = True, compile: str | None = None, log=print) -> dict:
    """Measure each (label, folder) of `models` (the teacher first: ratios are to it) on the task's test split:
    its metrics, parameters, size on disk and, with `latency`, interleaved CPU latency at batch 8 and 1 x 128
    tokens. Writes `output_dir/report.json` and `report.md`; returns the report."""
    from ..data import load_task
    from ..evaluation import compare_latency, folder_size_mb
    from ..loading import load_tokenizer
    from ..metrics import evaluate_model, metric_spec

    dsd, info = load_task(task, max_eval_examples=max_eval_examples)
    spec = metric_spec(info)
    rows, timed = [], {}
    for index, (label, folder) in enumerate(models):
        log(f"Evaluating {label} ({folder})")
        model, fast = _load_stage(folder, index == 0, compile)
        tokenizer = load_tokenizer(folder)
        scores = evaluate_model(model, tokenizer, dsd["test"], spec, max_length=max_length, desc=f"{label} test")
        rows.append({"stage": label, "folder": folder, **{f"test_{k}": round(v, 4) for k, v in scores.items()},
                     "parameters": _parameters(model, folder), "size_mb": round(folder_size_mb(folder), 2),
                     "layers": model.config.num_hidden_layers, "hidden_size": model.config.hidden_size,
                     "vocab_size": model.config.vocab_size})
        timed[label] = fast
    if latency:
        log(f"Measuring CPU latency of {len(timed)} models (interleaved rounds, median; {torch.get_num_threads()} threads)")
        for batch in BATCHES:
            measured = compare_latency(timed, batch_size=batch, seq_len=SEQ_LEN)
            for row in rows:
                row[f"latency_ms_b{batch}"] = round(measured[row["stage"]], 2)
    _ratios(rows, spec.main)
    report = {"task": info.name, "split": "test", "examples": len(dsd["test"]), "metric": spec.main,
              "latency_setup": {"threads": torch.get_num_threads(), "seq_len": SEQ_LEN, "batches": list(BATCHES),
                                "serving": compile or "eager", "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                                "measured_by": "bertlite compress (evaluation.compare_latency)"} if latency else None,
              "rows": rows}
    os.makedirs(output_dir, exist_ok=True)
    write_json(os.path.join(output_dir, REPORT_JSON), report)
    _write_text(os.path.join(output_dir, REPORT_MD), render_report(report))
    log(render_report(report))
    return report


def _parameters(model, folder: str) -> int:
    """Parameters of the model; for an int8 model (packed weights) those of the tensors its folder stores."""
    from ..evaluation import count_parameters
    from ..hub.folder import ModelFolder

    if getattr(model, "bertlite_quantization", None) is not None:
        return ModelFolder.inspect(folder).num_parameters
    return count_parameters(model)


def _ratios(rows: list[dict], metric: str) -> None:
    """Each row relative to the first (the teacher): share of its metric, times smaller, times faster."""
    if not rows:
        raise BertliteError("Nothing to evaluate: the run has no model.")
    base = rows[0]
    key = f"test_{metric}"
    for row in rows:
        if base.get(key):
            row[f"{metric}_vs_teacher"] = round(row[key] / base[key], 4)
        row["smaller"] = round(base["size_mb"] / max(row["size_mb"], 1e-9), 2)
        for batch in BATCHES:
            if f"latency_ms_b{batch}" in row:
                row[f"speedup_b{batch}"] = round(base[f"latency_ms_b{batch}"] / max(row[f"latency_ms_b{batch}"], 1e-9), 2)


def render_report(report: dict) -> str:
    metric = report["metric"]
    timed = report["latency_setup"] is not None
    head = ["stage", f"test {metric}", "of teacher", "size (MB)", "smaller", "parameters"]
    if timed:
        head += ["b8 ms", "faster b8", "b1 ms", "faster b1"]
    lines = [f"# bertlite compress: {report['task']} ({report['examples']} test examples)", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in report["rows"]:
        cells = [row["stage"], f"{100 * row.get(f'test_{metric}', float('nan')):.2f}",
                 f"{100 * row.get(f'{metric}_vs_teacher', float('nan')):.1f}%", f"{row['size_mb']:.1f}",
                 f"{row['smaller']:.2f}x", f"{row['parameters'] / 1e6:.1f}M"]
        if timed:
            cells += [f"{row['latency_ms_b8']:.1f}", f"{row['speedup_b8']:.2f}x", f"{row['latency_ms_b1']:.1f}",
                      f"{row['speedup_b1']:.2f}x"]
        lines.append("| " + " | ".join(cells) + " |")
    if timed:
        setup = report["latency_setup"]
        lines += ["", f"Latency: {setup['seq_len']} tokens, {setup['threads']} threads, median of interleaved rounds, "
                      f"int8 served {setup['serving']}."]
    return "\n".join(lines) + "\n"


def card_metrics(report: dict, command: str | None = None) -> dict:
    """metrics.json for the final folder, in the card's schema (bertlite.hub.metrics): the teacher and the final
    model as measured by this report, so the card describes the model in the folder, not an earlier stage."""
    metric = report["metric"]
    keep = ("parameters", "size_mb", "layers", "hidden_size", f"test_{metric}",
            *(f"latency_ms_b{b}" for b in BATCHES), *(f"speedup_b{b}" for b in BATCHES))
    teacher, final = report["rows"][0], report["rows"][-1]
    out = {"teacher": {k: teacher[k] for k in keep if k in teacher and not k.startswith("speedup")},
           "student": {k: final[k] for k in keep if k in final},
           "eval_examples": {"test": report["examples"]}}
    if report["latency_setup"]:
        out["latency_setup"] = report["latency_setup"]
    if command:
        out["command"] = command
    return out


def _write_text(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
