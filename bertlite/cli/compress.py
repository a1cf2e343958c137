"""`bertlite compress`: one command from a teacher to a small, fast model folder, stage by stage.

The recipe (bertlite.compress.recipe) lists the stages and their options, which are the stage commands' own
(`bertlite distill`, `augment`, `prune`, `quantize`): this module turns each section into those commands' argument
dataclasses and each stage into a call of the function the command runs. The runner (bertlite.compress.stages)
skips stages already done with the same settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields

from ..benchmark import BASELINE_FP32, BASELINE_INT8, BASELINE_STAGE, TEACHER_LABEL, TEACHER_STAGE
from ..compress.recipe import DEFAULT_RECIPE, STAGE_ORDER, load_recipe
from ..compress.stages import FINAL_DIR, Stage, last_model_stage, run_stages, write_final
from ..errors import BertliteError
from ..loading import DEFAULT_TEACHER, display_name, resolve_model_name
from .augment import AugmentArguments
from .distill import DistillArguments, DistillTrainingArguments, GeneralArguments
from .prune import PruneArguments
from .push import PushOptions
from .quantize import QuantizeArguments

HELP = "Teacher in, deployable model out: fine-tune, distil, prune, prune the vocabulary, quantize, report, push (a recipe of stages)."

TITLES = {TEACHER_STAGE: "teacher fine-tune", "general_distillation": "general distillation",
          "augmentation": "augmentation", "distillation": "task distillation",
          "structured_pruning": "structured pruning", "vocabulary_pruning": "vocabulary pruning",
          "quantization": "int8 quantization", "baseline": "shrink-and-fine-tune baseline",
          "evaluation": "evaluation of every stage"}
# Options of the stage commands that the pipeline sets itself (from the top level or the stage before).
PIPELINE_SET = {"teacher", "task", "student", "augmented", "output_dir", "model", "general", "teacher_task",
                "overwrite", "split", "vocabulary", "vocabulary_min_count", "method", "fresh",
                "push_to_hub", "hub_token", "hub_model_id"}
# Stages whose options are not a command's dataclass: option -> (type, smallest value).
FINETUNE_OPTIONS = {"epochs": (float, 1e-9), "learning_rate": (float, 1e-12), "batch_size": (int, 1),
                    "max_length": (int, 8), "seed": (int, 0)}
VOCABULARY_OPTIONS = {"min_count": (int, 1)}
EVALUATION_OPTIONS = {"latency": (bool, None), "compile": (str, None), "max_length": (int, 8)}
TRAINING_DEFAULTS = {"report_to": "none"}


@dataclass
class CompressArguments:
    teacher: str | None = field(default=None, metadata={"help": f"Teacher: folder, Hub id or alias (default: the recipe's, else {DEFAULT_TEACHER!r}, the packaged MiniLM)."})
    task: str | None = field(default=None, metadata={"help": "Task (default: the recipe's, else rotten_tomatoes): an offline task, a GLUE task, a Hub dataset id or a local .csv/.json file."})
    recipe: str = field(default=DEFAULT_RECIPE, metadata={"help": "Recipe: a name from recipes/compress/ (default, tinybert4, distilbert6, prune-only, quantize-only, smoke) or a YAML file."})
    output_dir: str = field(default="bertlite-compressed", metadata={"help": "Run folder: stages/NN-name/ per stage, final/ the model to deploy."})
    max_train_examples: int | None = field(default=None, metadata={"help": "Use at most this many training examples in every stage (quick runs)."})
    max_eval_examples: int | None = field(default=None, metadata={"help": "Use at most this many validation/test examples in every stage (quick runs)."})
    seed: int | None = field(default=None, metadata={"help": "Seed of every stage after the teacher fine-tune (data order, initialisation, augmentation, pruning scores), unless a stage sets its own; runs with other seeds share the teacher (pass its folder as --teacher)."})

    def __post_init__(self):
        for name in ("max_train_examples", "max_eval_examples"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise BertliteError(f"--{name} must be >= 1.")
        if self.seed is not None and self.seed < 0:
            raise BertliteError("--seed must be >= 0.")


DATACLASSES = (CompressArguments, PushOptions)


# ----- recipe sections -> the stage commands' dataclasses ---------------------------------------------------------
def _names(*classes) -> set[str]:
    return {f.name for cls in classes for f in fields(cls) if f.init}


STAGE_OPTIONS = {
    TEACHER_STAGE: set(FINETUNE_OPTIONS),
    "general_distillation": _names(DistillArguments, GeneralArguments, DistillTrainingArguments) - PIPELINE_SET,
    "augmentation": _names(AugmentArguments) - PIPELINE_SET,
    "distillation": _names(DistillArguments, DistillTrainingArguments) - PIPELINE_SET,
    "structured_pruning": _names(PruneArguments) - PIPELINE_SET,
    "vocabulary_pruning": set(VOCABULARY_OPTIONS),
    "quantization": _names(QuantizeArguments) - PIPELINE_SET,
    "baseline": set(FINETUNE_OPTIONS),
    "evaluation": set(EVALUATION_OPTIONS),
}


def check_recipe(path: str, recipe: dict) -> None:
    for stage in STAGE_ORDER:
        unknown = sorted(set(recipe.get(stage) or {}) - STAGE_OPTIONS[stage])
        if unknown:
            raise BertliteError(f"Unknown option(s) {', '.join(unknown)} in stage {stage!r} of the recipe {path}: "
                                f"it takes the options of its command (see `bertlite compress --help` and the stage's command).")


def typed_options(stage: str, values: dict, spec: dict) -> dict:
    """The options of a stage that has no dataclass, converted and range-checked, or one line saying which is wrong."""
    out = {}
    for name, value in values.items():
        if name not in spec:
            continue
        kind, low = spec[name]
        try:
            if kind is bool:
                if not isinstance(value, bool):
                    raise ValueError
                converted = value
            elif value is None and kind is str:
                converted = None
            else:
                converted = kind(value)
        except (TypeError, ValueError):
            raise BertliteError(f"stage {stage}: {name} must be a {kind.__name__}, got {value!r}.") from None
        if low is not None and converted < low:
            raise BertliteError(f"stage {stage}: {name} must be >= {low:g}, got {value!r}.")
        out[name] = converted
    return out


def _coerce(value, kind):
    """YAML reads 1e-4 as a string: give numbers written that way to number fields as numbers."""
    if isinstance(value, str):
        text = str(kind)
        for number in ((int, float) if "int" in text and "float" not in text else (float,) if "float" in text else ()):
            try:
                return number(value)
            except ValueError:
                pass
    return value


def build(stage: str, classes, values: dict):
    """Instantiate each dataclass of `classes` with its share of `values`; a bad value is one line naming the stage."""
    out = []
    for cls in classes:
        kinds = {f.name: f.type for f in fields(cls) if f.init}
        mine = {k: _coerce(v, kinds[k]) for k, v in values.items() if k in kinds}
        try:
            out.append(cls(**mine))
        except BertliteError as err:
            raise BertliteError(f"stage {stage}: {err}") from err
        except (TypeError, ValueError) as err:
            raise BertliteError(f"stage {stage}: {str(err).splitlines()[0]}") from err
    return out


def _training(values: dict) -> dict:
    return {**TRAINING_DEFAULTS, **values}


@dataclass
class Plan:
    stages: list[Stage]
    teacher_path: str
    task: str
    output_dir: str
    evaluate: bool


@dataclass
class Layout:
    """What every stage builder needs: the run's teacher and task, and which stage's model the next stage takes."""

    recipe_path: str
    teacher: str  # as given (alias, folder, Hub id)
    teacher_source: str  # resolved
    teacher_name: str  # for records and cards
    task: str
    limits: dict  # max_train_examples / max_eval_examples of the whole run
    stages: list = field(default_factory=list)
    latest: str | None = None  # key of the latest stage that makes a model (None: the teacher)
    baseline: str | None = None  # the baseline's model folder inside its stage folder, when the recipe has one

    @property
    def common(self) -> dict:
        return {"teacher": self.teacher, "task": self.task, **self.limits}

    def teacher_folder(self, inputs: dict) -> str:
        return inputs.get(TEACHER_STAGE, self.teacher_source)

    def input_model(self):
        """A function of the finished stages' folders giving the model the stage being added works on."""
        key = self.latest
        return lambda inputs: inputs[key] if key else self.teacher_folder(inputs)

    def add(self, key: str, settings: dict, run, makes_model: bool = True) -> None:
        label = TEACHER_LABEL if key == TEACHER_STAGE else TITLES[key]  # its model's name in the report
        self.stages.append(Stage(key, TITLES[key], {**self.common, **settings}, run, makes_model=makes_model, label=label))
        if makes_model and key != TEACHER_STAGE:
            self.latest = key


def _teacher_stage(lay: Layout, options: dict, num_labels: int, task_name: str) -> None:
    from ..distillation.teacher import has_task_head

    if has_task_head(lay.teacher_source, num_labels):
        if options:
            print(f"The teacher {lay.teacher_name} already has a {num_labels}-label head for {task_name}: no fine-tune stage.")
        return
    opts = typed_options(TEACHER_STAGE, options, FINETUNE_OPTIONS)
    name = lay.teacher_name
    lay.teacher_name = f"{name} fine-tuned on {task_name}"

    def run_finetune(folder, inputs):
        from ..distillation.teacher import finetuned_teacher

        finetuned_teacher(lay.teacher_source, lay.task, folder, name=name,
                          max_train_examples=lay.limits["max_train_examples"], **opts)

    lay.add(TEACHER_STAGE, opts, run_finetune)


GENERAL = (DistillArguments, GeneralArguments, DistillTrainingArguments)
TASK_DISTILLATION = (DistillArguments, DistillTrainingArguments)


def _general_stage(lay: Layout, values: dict, check_dir: str) -> None:
    build("general_distillation", GENERAL, {**values, "teacher": lay.teacher, "general": True, "output_dir": check_dir,
                                            **_training(values)})

    def run_general(folder, inputs):
        from ..distillation.general import run_general_distillation

        d, g, t = build("general_distillation", GENERAL, {**values, "teacher": lay.teacher_folder(inputs), "general": True,
                                                          "output_dir": folder, **_training(values)})
        d.teacher_name = lay.teacher_name
        run_general_distillation(d, g, t)

    lay.add("general_distillation", values, run_general, makes_model=False)


def _augmentation_stage(lay: Layout, values: dict) -> None:
    values = dict(values)
    limit = values.pop("max_train_examples", None)
    values.pop("max_eval_examples", None)
    if limit and "max_examples" not in values:
        values["max_examples"] = limit
    build("augmentation", (AugmentArguments,), {**values, "task": lay.task})

    def run_augment(folder, inputs):
        from ..augmentation.job import run_augmentation

        (a,) = build("augmentation", (AugmentArguments,), {**values, "task": lay.task, "output_dir": folder,
                                                           "teacher": lay.teacher_folder(inputs), "overwrite": True})
        run_augmentation(a)

    lay.add("augmentation", values, run_augment, makes_model=False)


def _distillation_stage(lay: Layout, values: dict, check_dir: str) -> None:
    build("distillation", TASK_DISTILLATION, {**values, "teacher": lay.teacher, "task": lay.task, "output_dir": check_dir,
                                              **_training(values)})

    def run_distill(folder, inputs):
        from ..distillation.job import run_distillation

        extra = {"student": inputs["general_distillation"]} if "general_distillation" in inputs else {}
        if "augmentation" in inputs:
            extra["augmented"] = inputs["augmentation"]
        d, t = build("distillation", TASK_DISTILLATION, {**values, **extra, "teacher": lay.teacher_folder(inputs),
                                                         "task": lay.task, "output_dir": folder, **_training(values)})
        d.teacher_name = lay.teacher_name
        run_distillation(d, t)

    lay.add("distillation", values, run_distill)


def _pruning_stage(lay: Layout, values: dict) -> None:
    (checked,) = build("structured_pruning", (PruneArguments,), {**values, "model": lay.teacher_source, "task": lay.task})
    if not checked.is_structured:
        raise BertliteError(f"Stage structured_pruning of the recipe {lay.recipe_path} needs heads and/or ffn (fractions or counts).")
    source = lay.input_model()

    def run_prune(folder, inputs):
        from ..pruning.structured.pipeline import run_structured

        (p,) = build("structured_pruning", (PruneArguments,), {**values, "model": source(inputs), "task": lay.task,
                                                               "output_dir": folder})
        run_structured(p)

    lay.add("structured_pruning", values, run_prune)


def _vocabulary_stage(lay: Layout, values: dict) -> None:
    opts = typed_options("vocabulary_pruning", values, VOCABULARY_OPTIONS)
    source = lay.input_model()

    def run_vocabulary(folder, inputs):
        from ..pruning.vocabulary import prune_task_vocabulary

        prune_task_vocabulary(source(inputs), folder, lay.task, min_count=opts.get("min_count", 1))

    lay.add("vocabulary_pruning", opts, run_vocabulary)


def _quantization_values(values: dict) -> dict:
    """The quantization section as QuantizeArguments fields: the run's evaluation limit bounds the fidelity check."""
    values = dict(values)
    values.pop("max_train_examples", None)
    check_limit = values.pop("max_eval_examples", None)
    if check_limit and "max_check_examples" not in values:
        values["max_check_examples"] = check_limit
    return values


def _quantize(values: dict, model: str, folder: str, task: str) -> None:
    from .quantize import quantize

    (q,) = build("quantization", (QuantizeArguments,), {**values, "model": model, "output_dir": folder, "task": task})
    _, report = quantize(q)
    if report is not None:
        print(report.summary())


def _quantization_stage(lay: Layout, values: dict) -> None:
    values = _quantization_values(values)
    build("quantization", (QuantizeArguments,), {**values, "model": lay.teacher_source})
    source = lay.input_model()
    lay.add("quantization", values, lambda folder, inputs: _quantize(values, source(inputs), folder, lay.task))


# Structured-pruning options that decide which heads and neurons go (the baseline is pruned to the same widths,
# then trained on labels: recovery by distillation is what it is compared against, so it takes none).
PRUNING_SHAPE = ("heads", "ffn", "criterion", "scope", "min_heads_per_layer", "min_ffn_per_layer",
                 "importance_examples", "batch_size", "max_length", "seed", "max_train_examples")


def _baseline_stage(lay: Layout, values: dict, sections: dict) -> None:
    """What a user would build without distillation, at the final model's shape: the student's depth taken from the
    fine-tuned teacher's layers (build_student, as the distillation stage starts), pruned to the same head/FFN
    widths, the same vocabulary kept, fine-tuned on the labels alone (best validation epoch), the same int8."""
    opts = typed_options("baseline", values, FINETUNE_OPTIONS)
    if not any(stage.key == "distillation" for stage in lay.stages):
        raise BertliteError(f"Stage baseline of the recipe {lay.recipe_path} needs a distillation stage: it trains the "
                            "distilled student's shape on labels alone.")
    pruning = {k: v for k, v in (sections.get("structured_pruning") or {}).items() if k in PRUNING_SHAPE}
    vocabulary = typed_options("vocabulary_pruning", sections.get("vocabulary_pruning") or {}, VOCABULARY_OPTIONS)
    quantization = _quantization_values(sections["quantization"]) if "quantization" in sections else None
    steps = ["shrunk"] + (["pruned"] if pruning else []) + (["vocabulary"] if "vocabulary_pruning" in sections else []) \
        + [BASELINE_FP32] + ([BASELINE_INT8] if quantization is not None else [])
    settings = {**opts, "pruning": pruning, "vocabulary": vocabulary if "vocabulary_pruning" in sections else None,
                "quantization": quantization, "steps": steps}

    def run_baseline(folder, inputs):
        import shutil

        from ..distillation.student import build_student
        from ..distillation.teacher import fine_tune
        from ..jobs import save_model_folder
        from ..loading import load_config, load_model, load_tokenizer

        for step in steps:  # a re-run after an interrupt redoes the quick steps; the fine-tune resumes itself
            path = os.path.join(folder, step)
            if step != BASELINE_FP32 and os.path.isdir(path):
                shutil.rmtree(path)
        teacher_dir = lay.teacher_folder(inputs)
        shape = load_config(inputs["distillation"])
        teacher = load_model(teacher_dir, head="classifier")
        narrower = {k: getattr(shape, k) for k in ("hidden_size", "intermediate_size", "num_attention_heads")
                    if getattr(shape, k) != getattr(teacher.config, k)}
        current = os.path.join(folder, "shrunk")
        save_model_folder(current, build_student(teacher, num_layers=shape.num_hidden_layers, **narrower),
                          load_tokenizer(teacher_dir))
        if pruning:
            from ..pruning.structured.pipeline import run_structured

            (p,) = build("baseline", (PruneArguments,), {**pruning, "model": current, "task": lay.task, "evaluate": False,
                                                         "output_dir": os.path.join(folder, "pruned")})
            current = run_structured(p)
        if "vocabulary_pruning" in sections:
            from ..pruning.vocabulary import prune_task_vocabulary

            current, _ = prune_task_vocabulary(current, os.path.join(folder, "vocabulary"), lay.task,
                                               min_count=vocabulary.get("min_count", 1))
        current = fine_tune(current, lay.task, os.path.join(folder, BASELINE_FP32), what="shrink-and-fine-tune baseline",
                            name=f"{shape.num_hidden_layers}-layer student of {lay.teacher_name}",
                            max_train_examples=lay.limits["max_train_examples"], **opts)
        if quantization is not None:
            _quantize(quantization, current, os.path.join(folder, BASELINE_INT8), lay.task)

    lay.add(BASELINE_STAGE, settings, run_baseline, makes_model=False)
    lay.baseline = steps[-1]


def _evaluation_stage(lay: Layout, values: dict) -> None:
    opts = typed_options("evaluation", values, EVALUATION_OPTIONS)
    if opts.get("compile") not in (None, "pt2e"):
        raise BertliteError(f"Stage evaluation: compile must be pt2e or absent, got {opts['compile']!r}.")
    measured = [(s.key, s.label) for s in lay.stages if s.makes_model and s.key != TEACHER_STAGE]

    def run_evaluation(folder, inputs):
        from ..benchmark import BASELINE_LABEL, benchmark_models

        # The same measurement as `bertlite benchmark --from DIR` (compress_run_models): one report format and the
        # same labels (the markers' own) for both.
        models = [(TEACHER_LABEL, lay.teacher_folder(inputs))] + [(label, inputs[key]) for key, label in measured]
        baseline = (BASELINE_LABEL, os.path.join(inputs["baseline"], lay.baseline)) if lay.baseline else None
        report = benchmark_models(models, lay.task, splits=("test",), max_eval_examples=lay.limits["max_eval_examples"],
                                  max_length=opts.get("max_length", 128), latency=opts.get("latency", True),
                                  compile=opts.get("compile"), baseline=baseline)
        report.write(folder)
        report.print_summary()

    lay.add("evaluation", opts, run_evaluation, makes_model=False)


def plan(args: CompressArguments) -> Plan:
    """The stages of the run, every option checked before anything trains."""
    from ..data import load_task

    path, recipe = load_recipe(args.recipe)
    check_recipe(path, recipe)
    teacher = args.teacher or recipe.get("teacher") or DEFAULT_TEACHER
    task = args.task or recipe.get("task") or "rotten_tomatoes"
    limits = {"max_train_examples": args.max_train_examples or recipe.get("max_train_examples"),
              "max_eval_examples": args.max_eval_examples or recipe.get("max_eval_examples")}
    _, info = load_task(task, max_train_examples=1, max_eval_examples=1)
    lay = Layout(path, teacher, resolve_model_name(teacher), display_name(teacher), task, limits)
    check_dir = os.path.join(args.output_dir, "check")  # TrainingArguments need an output_dir; nothing is written
    seed = args.seed if args.seed is not None else recipe.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise BertliteError(f"seed in the recipe {path} must be a whole number >= 0, got {seed!r}.")
    # The run's seed reaches every stage after the teacher's (which keeps its own, so seeds share one teacher); a
    # stage that names its own seed keeps it.
    run_seed = {"seed": seed} if seed is not None else {}
    sections = {name: {**limits, **(run_seed if name != TEACHER_STAGE else {}), **recipe[name]}
                for name in STAGE_ORDER if name in recipe}
    _teacher_stage(lay, recipe.get(TEACHER_STAGE) or {}, info.num_labels, info.name)
    builders = {"general_distillation": lambda v: _general_stage(lay, v, check_dir),
                "augmentation": lambda v: _augmentation_stage(lay, v),
                "distillation": lambda v: _distillation_stage(lay, v, check_dir),
                "structured_pruning": lambda v: _pruning_stage(lay, v),
                "vocabulary_pruning": lambda v: _vocabulary_stage(lay, v),
                "quantization": lambda v: _quantization_stage(lay, v),
                "baseline": lambda v: _baseline_stage(lay, v, sections)}
    for name, builder in builders.items():
        if name in sections:
            builder(sections[name])
    if lay.latest is None:
        raise BertliteError(f"The recipe {path} has no stage that makes a model: add distillation, structured_pruning, "
                            "vocabulary_pruning or quantization.")
    if "evaluation" in recipe:
        _evaluation_stage(lay, recipe["evaluation"])
    return Plan(lay.stages, lay.teacher_source, task, args.output_dir, "evaluation" in recipe)


def finish(run_plan: Plan, folders: dict, command: str | None = None) -> str:
    """DIR/final: the last model stage's files, the report, metrics.json measured on that model, the model card."""
    from ..benchmark import PARETO_PNG, REPORT_JSON, REPORT_MD, Report
    from ..compress.report import card_metrics
    from ..hub.card import render_model_card
    from ..record import save_metrics, write_text

    final = os.path.join(run_plan.output_dir, FINAL_DIR)
    source = folders[last_model_stage(run_plan.stages).key]
    extra = []
    report = None
    if run_plan.evaluate:
        evaluation = folders["evaluation"]
        extra = [os.path.join(evaluation, name) for name in (REPORT_MD, REPORT_JSON, PARETO_PNG)
                 if os.path.isfile(os.path.join(evaluation, name))]
        report = Report.read(evaluation)
    write_final(source, final, extra)
    if report is not None:
        save_metrics(final, card_metrics(report, command))
    text = render_model_card(final)
    write_text(os.path.join(final, "README.md"), text)
    return final


def run(args: CompressArguments, push: PushOptions) -> int:
    from ..hub.metrics import invoked_command
    from ..hub.push import push_if_requested
    from ..jobs import prepare_output_dir

    run_plan = plan(args)
    prepare_output_dir(args.output_dir)
    print(f"bertlite compress: {len(run_plan.stages)} stages ({', '.join(s.title for s in run_plan.stages)}) into {args.output_dir}")
    folders = run_stages(run_plan.stages, args.output_dir)
    final = finish(run_plan, folders, invoked_command("compress"))
    print(f"\nFinal model: {final}")
    print(f"Load it with: bertlite.load_compressed({final!r})  (int8: compile='pt2e' for the fastest CPU path)")
    push_if_requested(final, push)
    return 0
