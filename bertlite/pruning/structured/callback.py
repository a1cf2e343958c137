"""`GradualPruningCallback`: prune heads and FFN neurons step by step while a Trainer trains (e.g. while distilling
from the unpruned teacher), then cut them out once at the end.

Design: masks during training, surgery after it. Removing units mid-training would replace parameter tensors under
the optimizer (its param groups and Adam moments would point at tensors that no longer exist, accelerate/DDP wrappers
and fused optimizers hold their own references) and would change the model object Trainer holds, which a callback
cannot swap. Masking instead keeps every tensor in place: a pruned unit's gate is set to 0, so the model computes
exactly what the smaller model will compute, its weights receive zero gradient, and the optimizer needs no change.
`finalize(model)` then performs the surgery once, on the trained weights.

Schedule: between `start` and `end` (fractions of the run's optimizer steps), `pruning_events` times, the number of
removed units rises along the cubic schedule of Zhu & Gupta (2017), n(t) = n_final * (1 - (1 - p)^3), so most units
go early while the model can still adapt. At each event, units are ranked by importance accumulated from the
training backward passes since the last event (taylor or fisher, from the gates' per-example gradients -- no extra
forward passes) or by weight magnitude; removed units stay removed.

Works with any `transformers.Trainer` (it only uses callback events). Resuming: masks are written into every
checkpoint (`bertlite_pruning_masks.json`) and re-applied when training resumes from it.
"""

from __future__ import annotations

import json
import os

import torch
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import logging

from ...errors import BertliteError
from .gates import UnitGates
from .importance import DATA_CRITERIA, ImportanceAccumulator, check_criterion, magnitude_scores
from .selection import SCOPES, PruningPlan, check_target, default_min_ffn, plan_pruning, resolve_target
from .surgery import prune_gated

logger = logging.get_logger(__name__)
MASKS_FILE = "bertlite_pruning_masks.json"


def _student(model):
    """The model to prune: DistillationTrainer passes callbacks its student together with the width projections."""
    return getattr(model, "student", model)


class GradualPruningCallback(TrainerCallback):
    """Gradually mask `heads` / `ffn` (fraction below 1 or whole count, as in `bertlite prune`) during training.

    Example::

        callback = GradualPruningCallback(heads=0.5, ffn=0.5, criterion="taylor")
        trainer = DistillationTrainer(model=student, teacher_model=teacher, args=config, callbacks=[callback], ...)
        trainer.train()
        pruned = callback.finalize(trainer.student)   # physically smaller Bertlite model
        pruned.save_pretrained("out")
    """

    def __init__(self, heads: float | int | None = None, ffn: float | int | None = None, criterion: str = "taylor",
                 scope: str = "global", start: float = 0.0, end: float = 0.7, pruning_events: int = 10,
                 min_heads_per_layer: int = 1, min_ffn_per_layer: int | None = None, normalize: bool = True):
        check_target(heads, "heads")
        check_target(ffn, "ffn")
        check_criterion(criterion)
        if not heads and not ffn:
            raise BertliteError("GradualPruningCallback needs a heads and/or ffn target.")
        if scope not in SCOPES:
            raise BertliteError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}.")
        if not 0 <= start <= end <= 1:
            raise BertliteError(f"Need 0 <= start <= end <= 1 (fractions of the training steps), got start={start}, end={end}.")
        if pruning_events < 1:
            raise BertliteError(f"pruning_events must be >= 1, got {pruning_events}.")
        self.heads, self.ffn, self.criterion, self.scope = heads, ffn, criterion, scope
        self.start, self.end, self.pruning_events = start, end, pruning_events
        self.min_heads_per_layer, self.min_ffn_per_layer, self.normalize = min_heads_per_layer, min_ffn_per_layer, normalize
        self.gates: UnitGates | None = None
        self.accumulator: ImportanceAccumulator | None = None
        self.event_steps: list[int] = []
        self.history: list[dict] = []  # one entry per pruning event: step, heads and neurons removed so far

    # ----- schedule -----------------------------------------------------------------------------------------------
    def schedule(self, max_steps: int) -> list[int]:
        """Optimizer steps (1-based) after which a pruning event happens."""
        first = max(1, round(self.start * max_steps))
        last = max(first, round(self.end * max_steps))
        if self.pruning_events == 1:
            return [last]
        steps = [round(first + (last - first) * k / (self.pruning_events - 1)) for k in range(self.pruning_events)]
        return sorted(set(steps))

    def fraction_at(self, event_index: int) -> float:
        """Share of the final target removed after event `event_index` (cubic schedule; 1.0 at the last event)."""
        events = len(self.event_steps)
        progress = (event_index + 1) / events
        return 1.0 - (1.0 - progress) ** 3

    # ----- Trainer events ----------------------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        model = _student(model)
        if model is None:
            raise BertliteError("GradualPruningCallback needs the Trainer to pass the model to callbacks.")
        if getattr(args, "load_best_model_at_end", False):
            logger.warning("GradualPruningCallback with load_best_model_at_end: the best checkpoint may have fewer units "
                           "masked than the final model; the final masks are applied to it.")
        if self.gates is None or self.gates.model is not model:
            self.gates = UnitGates(model, requires_grad=self.criterion in DATA_CRITERIA)
            self.accumulator = ImportanceAccumulator(self.gates, self.criterion) if self.criterion in DATA_CRITERIA else None
        self.gates.attach()
        total_heads = sum(g.numel() for g in self.gates.heads)
        total_ffn = sum(g.numel() for g in self.gates.ffn)
        self.final_heads = resolve_target(self.heads, total_heads, "attention heads", "heads")
        self.final_ffn = resolve_target(self.ffn, total_ffn, "FFN neurons", "ffn")
        self.event_steps = self.schedule(state.max_steps)
        self._restore_masks(args, state)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        model = _student(model)
        if self.accumulator is not None:
            self._synchronize_and_accumulate()
        if state.global_step in self.event_steps:
            self._prune_event(self.event_steps.index(state.global_step), state.global_step, model)
        return control

    def on_train_end(self, args, state, control, model=None, **kwargs):
        model = _student(model)
        # Training that stopped early still ends at the target, so that finalize() yields the promised size.
        heads_now, ffn_now = self._removed_counts() if self.gates is not None else (0, 0)
        if self.gates is not None and (heads_now < self.final_heads or ffn_now < self.final_ffn):
            logger.warning("Training ended before the last pruning event: applying the final target now, without "
                           "further training to recover from it.")
            self._prune_event(len(self.event_steps) - 1, state.global_step, model)

    def on_save(self, args, state, control, **kwargs):
        if self.gates is None or not state.is_world_process_zero:
            return control
        folder = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        if os.path.isdir(folder):
            with open(os.path.join(folder, MASKS_FILE), "w") as f:
                json.dump({"heads": self.gates.masked_heads(), "ffn": self.gates.masked_neurons(), "history": self.history}, f)
        return control

    # ----- after training -----------------------------------------------------------------------------------------
    def finalize(self, model) -> torch.nn.Module:
        """Remove the masked units for real (surgery) and detach the gates. Returns the smaller Bertlite model."""
        if self.gates is None:
            raise BertliteError("GradualPruningCallback.finalize() called before training started.")
        if self.gates.model is not model:
            raise BertliteError("finalize() must be given the model the callback pruned during training (trainer.model).")
        self.gates.remove()
        pruned = prune_gated(model, self.gates)
        self.gates = None
        return pruned

    # ----- internals ----------------------------------------------------------------------------------------------
    def _removed_counts(self) -> tuple[int, int]:
        plan = self._current_plan()
        return plan.num_heads, plan.num_neurons

    def _current_plan(self) -> PruningPlan:
        return PruningPlan(heads=self.gates.masked_heads(), ffn=self.gates.masked_neurons())

    def _synchronize_and_accumulate(self) -> None:
        self.accumulator.update()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # Every process must mask the same units: rank on scores summed over all processes.
            for kind in ("heads", "ffn"):
                for layer, total in enumerate(self.accumulator.sums[kind]):
                    reduced = total.to(self.gates.heads[0].device)
                    torch.distributed.all_reduce(reduced)
                    self.accumulator.sums[kind][layer] = reduced.cpu()

    def _scores(self, model):
        if self.accumulator is not None and self.accumulator.examples > 0:
            scores = self.accumulator.scores()
            self.accumulator.reset()
        else:
            scores = magnitude_scores(model)
        return scores.normalize() if self.normalize else scores

    def _prune_event(self, event_index: int, step: int, model) -> None:
        share = self.fraction_at(event_index)
        target_heads = round(self.final_heads * share)
        target_ffn = round(self.final_ffn * share)
        plan = plan_pruning(self._scores(model), heads=target_heads or None, ffn=target_ffn or None, scope=self.scope,
                            min_heads_per_layer=self.min_heads_per_layer,
                            min_ffn_per_layer=self.min_ffn_per_layer if self.min_ffn_per_layer is not None else default_min_ffn(model.config),
                            already_removed=self._current_plan())
        self.gates.mask_heads(plan.heads)
        self.gates.mask_neurons(plan.ffn)
        heads_now, ffn_now = self._removed_counts()
        self.history.append({"step": step, "heads_removed": heads_now, "ffn_removed": ffn_now})
        logger.info(f"Gradual pruning at step {step}: {heads_now}/{self.final_heads} heads and {ffn_now}/{self.final_ffn} FFN neurons masked.")

    def _restore_masks(self, args, state) -> None:
        if not state.global_step:
            return
        path = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}", MASKS_FILE)
        if not os.path.isfile(path):
            logger.warning(f"Resuming at step {state.global_step} without {MASKS_FILE}: pruning restarts from no masks.")
            return
        with open(path) as f:
            saved = json.load(f)
        self.gates.mask_heads({int(k): v for k, v in saved["heads"].items()})
        self.gates.mask_neurons({int(k): v for k, v in saved["ffn"].items()})
        self.history = saved.get("history", [])
