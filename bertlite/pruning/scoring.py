"""The test scores that `bertlite prune` records at each stage (before, pruned, recovered), by the task's metrics
(bertlite.metrics), for structured and weight pruning alike."""

from __future__ import annotations


class StageScores:
    """Scores a model on the task's test split when the command evaluates; `values` is what compression_config.json
    records: {"split", "examples", "metric": the task's main metric, "<metric>_<stage>": value, ...}. Classification
    tasks always get `accuracy_<stage>`."""

    def __init__(self, enabled: bool, tokenizer, dsd, info, *, batch_size: int, max_length: int):
        from ..metrics import metric_spec

        self.enabled = bool(enabled) and dsd is not None
        self.tokenizer, self.dsd, self.batch_size, self.max_length = tokenizer, dsd, batch_size, max_length
        self.spec = metric_spec(info).with_accuracy() if self.enabled else None
        self.values = {"split": "test", "examples": len(dsd["test"]), "metric": self.spec.main} if self.enabled else {}

    def __call__(self, model, stage: str) -> None:
        if not self.enabled:
            return
        from ..metrics import evaluate_model

        scores = evaluate_model(model, self.tokenizer, self.dsd["test"], self.spec, batch_size=self.batch_size,
                                max_length=self.max_length, desc=f"Test ({stage})")
        for metric, value in scores.items():
            self.values[f"{metric}_{stage}"] = round(value, 4)
        print(f"test {stage}: " + ", ".join(f"{m} {v:.4f}" for m, v in scores.items()))


def final_scores(values: dict) -> dict:
    """The last stage's test scores in `StageScores.values`, named as the card names them (`test_<metric>`), for
    `CompressionConfig.measured`. Empty when nothing was scored."""
    main = values.get("metric")
    stage = next((s for s in ("recovered", "pruned", "before") if f"{main}_{s}" in values), None)
    if main is None or stage is None:
        return {}
    suffix = f"_{stage}"
    return {f"test_{key[:-len(suffix)]}": value for key, value in values.items() if key.endswith(suffix)}
