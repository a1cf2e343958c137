"""`bertlite prune`: make a fine-tuned model smaller by pruning.

Two families share this command and its options (one dataclass, `PruneArguments`):

* structured pruning (`bertlite.pruning.structured`): removes whole attention heads and FFN neurons, so the model gets
  physically smaller and faster. Selected by `--heads` and/or `--ffn` (or `--method structured`).
* weight-level pruning (`bertlite.pruning.unstructured`): zeroes individual weights. Selected by `--method magnitude|lth|obd|synflow`
  with `--sparsity`; `run()` hands the parsed `PruneArguments` to `bertlite.pruning.unstructured.cli_run(args) -> int`.

Also callable from Python: `run(PruneArguments(model="my-model", heads=0.5, ffn=0.5, recover=True))`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from ..errors import BertliteError
from ..pruning import defaults

HELP = "Prune a fine-tuned model: remove attention heads / FFN neurons (--heads/--ffn), weights (--method ... --sparsity) or unused vocabulary (--vocabulary)."

STRUCTURED = "structured"
WEIGHT_METHODS = ("magnitude", "lth", "obd", "synflow")
VOCABULARY = "vocabulary"
METHODS = (STRUCTURED, *WEIGHT_METHODS)
SCHEDULES = ("oneshot", "gradual")
# Options of one family only: giving one to the other family is an error rather than silently ignored.
STRUCTURED_ONLY = ("heads", "ffn", "criterion", "schedule", "min_heads_per_layer", "min_ffn_per_layer")
WEIGHT_ONLY = ("sparsity", "iterations", "rewind_step", "include_embeddings", "include_classifier", "obd_batch_size",
               "allow_layer_collapse")
METHOD_ONLY = {"rewind_step": "lth", "obd_batch_size": "obd"}


@dataclass
class PruneArguments:
    """Every option of `bertlite prune`, for both pruning families.

    Fields by owner (all have defaults; an option of the other family, given, is an error):
      shared ........ model, output_dir, method, task, scope, recover, teacher, epochs, recovery_steps, learning_rate,
                      batch_size, max_length, seed, max_train_examples, max_eval_examples, evaluate,
                      importance_examples, trust_remote_code
      structured .... heads, ffn, criterion, min_heads_per_layer, min_ffn_per_layer, schedule
      weight-level .. sparsity, iterations, rewind_step, include_embeddings, include_classifier, obd_batch_size,
                      allow_layer_collapse

    `None` (importance_examples, iterations) means "the family's / method's own default" (bertlite.pruning.defaults).
    An option of the other family that differs from its default is refused.

    `method` is filled in by validation: "structured" when --heads/--ffn are given, "magnitude" when only --sparsity
    is, so consumers can rely on it being one of METHODS. Range checks of the weight-level fields beyond the basic
    ones here belong to `bertlite.pruning.unstructured.cli_run`.
    """

    # ----- shared -------------------------------------------------------------------------------------------------
    model: str | None = field(default=None, metadata={"help": "Model to prune: a folder or Hub id of a model fine-tuned on --task (required)."})
    output_dir: str | None = field(default=None, metadata={"help": "Folder for the pruned model (default: next to a local --model folder, '<model>-pruned'; './<org>--<name>-pruned' for a Hub id)."})
    method: str | None = field(default=None, metadata={"help": f"Pruning method: {', '.join(METHODS)}. Default: 'structured' when --heads/--ffn are given, 'magnitude' when only --sparsity is."})
    task: str = field(default="rotten_tomatoes", metadata={"help": "Task whose data scores importance, drives recovery and is evaluated (offline: rotten_tomatoes, imdb; GLUE names; a CSV/JSON file)."})
    scope: str = field(default="global", metadata={"help": "Ranking scope: 'global' (across all layers) or 'layer' (every layer loses the same share)."})
    recover: bool = field(default=False, metadata={"help": "After pruning, recover accuracy by distilling from --teacher (default: the unpruned model)."})
    teacher: str | None = field(default=None, metadata={"help": "Teacher for recovery distillation (default: the unpruned --model)."})
    epochs: float = field(default=defaults.EPOCHS, metadata={"help": "Training epochs of recovery / gradual pruning / retraining rounds; > 0."})
    recovery_steps: int = field(default=-1, metadata={"help": "When > 0: optimizer steps of each recovery / retraining run instead of --epochs."})
    learning_rate: float = field(default=defaults.LEARNING_RATE, metadata={"help": "Learning rate for recovery / gradual pruning; > 0."})
    batch_size: int = field(default=defaults.BATCH_SIZE, metadata={"help": "Batch size for importance scoring, training and evaluation; >= 1."})
    max_length: int = field(default=defaults.MAX_LENGTH, metadata={"help": "Maximum tokens per example; >= 8."})
    seed: int = field(default=defaults.SEED, metadata={"help": "Random seed (data order, recovery training)."})
    max_train_examples: int | None = field(default=None, metadata={"help": "Use at most this many training examples (quick runs)."})
    max_eval_examples: int | None = field(default=None, metadata={"help": "Evaluate on at most this many validation/test examples (quick runs)."})
    evaluate: bool = field(default=True, metadata={"help": "Measure test accuracy before pruning, after pruning and after recovery (stored in compression_config.json)."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow loading a model that needs its own code from the Hub (off unless you trust it)."})

    # ----- structured pruning -------------------------------------------------------------------------------------
    # str on the command line, so that a count (3) and a float (3.0) stay apart; a number from Python or a recipe.
    heads: str | None = field(default=None, metadata={"help": "Attention heads to remove: a fraction (0 <= x < 1) or a whole count written as an integer (>= 1)."})
    ffn: str | None = field(default=None, metadata={"help": "FFN neurons to remove: a fraction (0 <= x < 1) or a whole count written as an integer (>= 1)."})
    criterion: str = field(default="taylor", metadata={"help": "Importance: 'taylor' (|dL/dgate|, Michel et al. 2019), 'fisher' (OBD saliency with empirical Fisher), 'magnitude' (weight norms, no data)."})
    min_heads_per_layer: int = field(default=1, metadata={"help": "Heads every layer keeps; 0 allows removing whole attention blocks."})
    min_ffn_per_layer: int | None = field(default=None, metadata={"help": "FFN neurons every layer keeps (default: 1/16 of the unpruned width); 0 allows removing whole FFN blocks."})
    importance_examples: int | None = field(default=None, metadata={"help": f"Training examples that score importance; >= 1. Default: {defaults.IMPORTANCE_EXAMPLES} for structured taylor/fisher, {defaults.OBD_EXAMPLES} for obd."})
    schedule: str = field(default="oneshot", metadata={"help": "'oneshot': score, prune, then (with --recover) distill; 'gradual': prune step by step while distilling from the teacher."})

    # ----- weight-level pruning (bertlite.pruning.unstructured) -----------------------------------------------------------------
    sparsity: float | None = field(default=None, metadata={"help": "Weight-level methods: fraction of prunable weights set to zero, in [0, 1)."})
    iterations: int | None = field(default=None, metadata={"help": "Weight-level methods: pruning rounds (lth: train-prune-rewind cycles; synflow: scoring iterations); >= 1. Default: the method's own."})
    rewind_step: int = field(default=0, metadata={"help": "lth: optimizer step whose weights the survivors are rewound to (0 = initial weights); >= 0."})
    include_embeddings: bool = field(default=False, metadata={"help": "Weight-level methods: also prune embedding matrices."})
    include_classifier: bool = field(default=False, metadata={"help": "Weight-level methods: also prune the pooler and classifier."})
    obd_batch_size: int = field(default=defaults.OBD_BATCH_SIZE, metadata={"help": "obd: examples per gradient when estimating the Fisher diagonal (1 = per example); >= 1."})
    allow_layer_collapse: bool = field(default=False, metadata={"help": "Weight-level methods: warn instead of refusing when a layer would be pruned entirely (structured pruning: see --min_heads_per_layer)."})

    # ----- vocabulary pruning (bertlite.pruning.vocabulary) -------------------------------------------------------
    vocabulary: bool = field(default=False, metadata={"help": "Prune the vocabulary instead: keep the embedding rows of the tokens in --task's training split (and the special tokens) and rewrite the tokenizer to match. Run it on an fp32 folder, before `bertlite quantize`."})
    vocabulary_min_count: int = field(default=1, metadata={"help": "With --vocabulary: keep the tokens seen at least this many times; >= 1."})

    def __post_init__(self):
        from ..pruning.structured.selection import check_target

        if not self.model:
            raise BertliteError("--model is required: the fine-tuned model (folder or Hub id) to prune.")
        if self.vocabulary or self.method == VOCABULARY:
            self._check_vocabulary()
            return
        if self.vocabulary_min_count != 1:
            raise BertliteError("--vocabulary_min_count is for --vocabulary: add --vocabulary or remove it.")
        self.heads, self.ffn = _target(self.heads, "--heads"), _target(self.ffn, "--ffn")
        if self.method is None:
            if self.heads is not None or self.ffn is not None:
                self.method = STRUCTURED
            elif self.sparsity is not None:
                self.method = "magnitude"
            else:
                raise BertliteError("Nothing to prune: give --heads and/or --ffn (structured pruning), --vocabulary, or --method "
                                    f"{'|'.join(WEIGHT_METHODS)} with --sparsity (weight-level pruning).")
        if self.method not in METHODS:
            raise BertliteError(f"--method must be one of {', '.join(METHODS)}, got {self.method!r}.")
        if self.method == STRUCTURED:
            if self.heads is None and self.ffn is None:
                raise BertliteError("--method structured needs --heads and/or --ffn (a fraction below 1 or a whole count).")
            self._refuse(WEIGHT_ONLY, f"weight-level pruning (--method {'|'.join(WEIGHT_METHODS)})", "structured pruning")
            check_target(self.heads, "--heads")
            check_target(self.ffn, "--ffn")
        else:
            self._refuse(STRUCTURED_ONLY, "structured pruning (--heads/--ffn)", f"--method {self.method}")
            for name, method in METHOD_ONLY.items():
                if self.method != method:
                    self._refuse((name,), f"--method {method}", f"--method {self.method}")
            if self.sparsity is None or not 0 <= self.sparsity < 1:
                raise BertliteError(f"--method {self.method} needs --sparsity in [0, 1), got {self.sparsity}.")
        if self.criterion not in ("taylor", "fisher", "magnitude"):
            raise BertliteError(f"--criterion must be taylor, fisher or magnitude, got {self.criterion!r}.")
        if self.scope not in ("global", "layer"):
            raise BertliteError(f"--scope must be 'global' or 'layer', got {self.scope!r}.")
        if self.schedule not in SCHEDULES:
            raise BertliteError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}.")
        if self.min_heads_per_layer < 0 or (self.min_ffn_per_layer is not None and self.min_ffn_per_layer < 0):
            raise BertliteError("--min_heads_per_layer and --min_ffn_per_layer must be >= 0.")
        checks = {"epochs": self.epochs > 0, "learning_rate": self.learning_rate > 0,
                  "batch_size": self.batch_size >= 1, "max_length": self.max_length >= 8,
                  "importance_examples": self.importance_examples is None or self.importance_examples >= 1,
                  "iterations": self.iterations is None or self.iterations >= 1, "rewind_step": self.rewind_step >= 0,
                  "obd_batch_size": self.obd_batch_size >= 1}
        for name, ok in checks.items():
            if not ok:
                raise BertliteError(f"--{name} is out of range: {getattr(self, name)} (see `bertlite prune --help`).")
        for name in ("max_train_examples", "max_eval_examples"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise BertliteError(f"--{name} must be >= 1.")

    def _check_vocabulary(self) -> None:
        """--vocabulary prunes the vocabulary alone: the other pruning options do not apply to it."""
        if self.heads is not None or self.ffn is not None or self.sparsity is not None or self.method not in (None, VOCABULARY):
            raise BertliteError("--vocabulary prunes the vocabulary alone: prune heads/FFN or weights first, then run "
                                "`bertlite prune --model PRUNED_DIR --vocabulary` on the folder that wrote.")
        if self.recover:
            raise BertliteError("--recover does not apply to --vocabulary: tokens seen in training keep their exact embeddings.")
        if self.vocabulary_min_count < 1:
            raise BertliteError(f"--vocabulary_min_count must be >= 1, got {self.vocabulary_min_count}.")
        self.method, self.vocabulary = VOCABULARY, True

    def _refuse(self, names: tuple[str, ...], owner: str, chosen: str) -> None:
        """One line naming every option of `names` that was given (differs from its default) although it does not
        apply to the chosen method."""
        given = [f"--{f.name}" for f in fields(self) if f.name in names and getattr(self, f.name) != f.default]
        if given:
            them = "it" if len(given) == 1 else "them"
            raise BertliteError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for {owner}, not {chosen}: remove {them}.")

    @property
    def is_structured(self) -> bool:
        return self.method == STRUCTURED


def _target(value, option: str):
    """--heads/--ffn as given: "3" is a count (int), "0.5" a fraction; numbers (Python, a recipe) pass unchanged."""
    if not isinstance(value, str):
        return value
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        raise BertliteError(f"{option} takes a fraction below 1 or a whole count, got {value!r}.") from None


DATACLASSES = (PruneArguments,)


def run(args: PruneArguments) -> int:
    from ..loading import default_output_dir

    if args.method == VOCABULARY:
        from ..pruning.vocabulary import prune_task_vocabulary

        args.output_dir = args.output_dir or default_output_dir(args.model, "vocab")
        prune_task_vocabulary(args.model, args.output_dir, args.task, min_count=args.vocabulary_min_count)
        print(f"Load it with: bertlite.load_compressed({args.output_dir!r})")
        return 0
    args.output_dir = args.output_dir or default_output_dir(args.model, "pruned")
    if args.is_structured:
        from ..pruning.structured.pipeline import run_structured

        run_structured(args)
    else:
        from ..pruning.unstructured import cli_run

        cli_run(args)
    print(f"Load it with: bertlite.load_compressed({args.output_dir!r})")
    return 0
