"""The compress run's final folder: metrics.json written from the run's benchmark report (bertlite.benchmark), so the
card describes the final model, not an earlier stage."""

from __future__ import annotations

BATCHES = (8, 1)


def card_metrics(report, command: str | None = None) -> dict:
    """metrics.json for the final folder, in the card's schema (bertlite.hub.metrics): the teacher (the report's first
    row) and the final model (its last row that is not the baseline) as the run's benchmark measured them."""
    rows = [row for row in report.rows if row.get("role") != "baseline"]
    quality = [k for k in rows[0] if k.startswith("test_") and not k.endswith("_of_first")]
    keep = ("parameters", "size_mb", "layers", "hidden_size", *quality, *(f"latency_ms_b{b}" for b in BATCHES))
    teacher, final = rows[0], rows[-1]
    out = {"teacher": {k: teacher[k] for k in keep if teacher.get(k) is not None},
           "student": {**{k: final[k] for k in keep if final.get(k) is not None},
                       **{f"speedup_b{b}": final[f"speedup_b{b}"] for b in BATCHES if final.get(f"speedup_b{b}")}},
           "eval_examples": dict(report.setup.get("examples") or {})}
    if any(f"latency_ms_b{b}" in final for b in BATCHES):
        out["latency_setup"] = {k: report.setup.get(k) for k in ("threads", "seq_len", "omp_wait_policy", "compile")}
    if command:
        out["command"] = command
    return out
