"""Building a student from a teacher: a subset of its layers (DistilBERT-style init) and/or a narrower width."""

from __future__ import annotations

import copy

import torch
from transformers import PreTrainedModel

from ..errors import BertliteError, check_model


STUDENT_HEADS = ("teacher", "fresh")  # what a headless --student starts its classifier from


def default_layer_ids(num_student_layers: int, num_teacher_layers: int) -> list[int]:
    """Teacher layers (0-based) to copy: every k-th from the bottom when the depth divides (DistilBERT took every
    other layer), else evenly spaced from the first to the last."""
    if not 1 <= num_student_layers <= num_teacher_layers:
        raise BertliteError(f"A student built from teacher layers needs 1..{num_teacher_layers} layers, got {num_student_layers}.")
    if num_teacher_layers % num_student_layers == 0:
        step = num_teacher_layers // num_student_layers
        return list(range(0, num_teacher_layers, step))
    if num_student_layers == 1:
        return [0]
    return [round(i * (num_teacher_layers - 1) / (num_student_layers - 1)) for i in range(num_student_layers)]


def _encoder(model: PreTrainedModel):
    base = getattr(model, model.base_model_prefix, model)
    if not hasattr(base, "encoder") or not hasattr(base.encoder, "layer"):
        raise BertliteError(f"{type(model).__name__} has no BERT-style encoder.layer list; bertlite students are built from BERT-family teachers.")
    return base


def student_init(teacher_config, num_layers: int | None = None, layer_ids: list[int] | None = None,
                 hidden_size: int | None = None, intermediate_size: int | None = None,
                 num_attention_heads: int | None = None, seed: int = 0) -> dict:
    """How `build_student` initialises a student with these arguments, checked: {"from_teacher_layers": [...]} when
    the width is the teacher's, else {"random_init_seed": seed} (with the new shape). The compression record stores
    it; `build_student` follows it, so the two cannot disagree."""
    num_teacher = teacher_config.num_hidden_layers
    if num_layers is not None and num_layers < 1:
        raise BertliteError(f"A student needs at least 1 layer, got num_layers={num_layers}.")
    if layer_ids is not None:
        if num_layers is not None and num_layers != len(layer_ids):
            raise BertliteError(f"--student_layers {num_layers} disagrees with {len(layer_ids)} layer ids {layer_ids}.")
        bad = [i for i in layer_ids if not 0 <= i < num_teacher]
        if bad or not layer_ids:
            raise BertliteError(f"Student layer ids {bad or layer_ids} are outside the teacher's layers 0..{num_teacher - 1}.")
        num_layers = len(layer_ids)
    num_layers = num_layers or num_teacher
    shape = {"hidden_size": hidden_size, "intermediate_size": intermediate_size, "num_attention_heads": num_attention_heads}
    narrower = any(v is not None and v != getattr(teacher_config, k) for k, v in shape.items())
    if not narrower:
        if num_layers > num_teacher:
            raise BertliteError(f"A student initialised from teacher layers cannot be deeper than the teacher ({num_teacher}).")
        return {"from_teacher_layers": list(layer_ids if layer_ids is not None else default_layer_ids(num_layers, num_teacher))}
    shape = {k: v or getattr(teacher_config, k) for k, v in shape.items()}
    if shape["hidden_size"] % shape["num_attention_heads"]:
        raise BertliteError(f"Student hidden size {shape['hidden_size']} must be divisible by its "
                            f"{shape['num_attention_heads']} attention heads.")
    return {"random_init_seed": seed, "num_hidden_layers": num_layers, **shape}


def build_student(teacher: PreTrainedModel, num_layers: int | None = None, layer_ids: list[int] | None = None,
                  hidden_size: int | None = None, intermediate_size: int | None = None,
                  num_attention_heads: int | None = None, seed: int = 0) -> PreTrainedModel:
    """A student of the teacher's class and vocabulary.

    Same width: a deep copy of the teacher keeping only `layer_ids` (default `default_layer_ids`), so embeddings,
    pooler, classifier and the chosen layers hold exactly the teacher's weights. Narrower (hidden, FFN or heads
    changed): the same architecture at the new shape, randomly initialised with `seed`. `student_init` describes
    which of the two these arguments give.
    """
    check_model(teacher, "teacher")
    for key, value in (("num_layers", num_layers), ("hidden_size", hidden_size), ("intermediate_size", intermediate_size),
                       ("num_attention_heads", num_attention_heads), ("seed", seed)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise BertliteError(f"build_student: {key} must be a whole number, got {value!r}.")
    init = student_init(teacher.config, num_layers, layer_ids, hidden_size, intermediate_size, num_attention_heads, seed)
    if "from_teacher_layers" in init:
        layer_ids = init["from_teacher_layers"]
        student = copy.deepcopy(teacher)
        base = _encoder(student)
        base.encoder.layer = torch.nn.ModuleList([base.encoder.layer[i] for i in layer_ids])
        student.config.num_hidden_layers = len(layer_ids)
        if hasattr(student.config, "layer_types") and student.config.layer_types:
            student.config.layer_types = [student.config.layer_types[i] for i in layer_ids]
        return student

    new_config = copy.deepcopy(teacher.config)
    for key in ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads"):
        setattr(new_config, key, init[key])
    torch.manual_seed(seed)
    return type(teacher)(new_config)


def load_student(path: str, num_labels: int, teacher: PreTrainedModel, trust_remote_code: bool = False,
                 head: str = "teacher", log=None) -> tuple[PreTrainedModel, list[str]]:
    """A given student model (folder or Hub id); its vocabulary must be the teacher's. Returns the student and the
    parts of the teacher's head copied into it (none when it had its own head or gets a random one).

    A student without a classification head (e.g. a general-distillation encoder) gets one. With `head="teacher"`
    and the teacher's width, that is a copy of the fine-tuned teacher's pooler and classifier: the student's last
    layer was trained to imitate the teacher's last layer, so the teacher's head already reads it (the head was
    fine-tuned together with the pooler, so both are copied). Otherwise, or with `head="fresh"`, a random one.
    """
    from ..loading import is_classifier, load_config, load_model

    check_student_head(head)
    headless = not is_classifier(load_config(path, trust_remote_code))
    student = load_model(path, head="classifier", num_labels=num_labels, trust_remote_code=trust_remote_code)
    check_same_vocabulary(student.config, teacher.config)
    copied = []
    if headless and head == "teacher":
        copied = copy_prediction_head(teacher, student)
        if log is not None:
            log(f"The student {path!r} has no classification head: " +
                (f"copied the teacher's ({', '.join(copied)})." if copied else "the teacher's does not fit it (other width), so it starts random."))
    return student, copied


def check_student_head(head: str) -> None:
    if head not in STUDENT_HEADS:
        raise BertliteError(f"student_head must be 'teacher' or 'fresh', got {head!r}.")


def copy_prediction_head(teacher: PreTrainedModel, student: PreTrainedModel) -> list[str]:
    """Copies the teacher's pooler and classifier into the student when all their shapes agree (both or none);
    returns what was copied."""
    t_base, s_base = getattr(teacher, teacher.base_model_prefix, None), getattr(student, student.base_model_prefix, None)
    pairs = [("pooler", getattr(t_base, "pooler", None), getattr(s_base, "pooler", None)),
             ("classifier", getattr(teacher, "classifier", None), getattr(student, "classifier", None))]
    if any(t is None or s is None for _, t, s in pairs):
        return []
    states = [(name, t.state_dict(), s.state_dict()) for name, t, s in pairs]
    if any(t.keys() != s.keys() or any(t[k].shape != s[k].shape for k in t) for _, t, s in states):
        return []
    with torch.no_grad():
        for (_, _, module), (_, t_state, _) in zip(pairs, states):
            module.load_state_dict(t_state)
    return [name for name, _, _ in pairs]


def check_same_vocabulary(student_config, teacher_config, student_tokenizer=None, teacher_tokenizer=None) -> None:
    """Distillation compares outputs token by token: both models must read the same token ids."""
    if student_config.vocab_size != teacher_config.vocab_size:
        raise BertliteError(f"Student vocabulary ({student_config.vocab_size} tokens) differs from the teacher's "
                            f"({teacher_config.vocab_size}): teacher and student must share one tokenizer.")
    if student_tokenizer is not None and teacher_tokenizer is not None and student_tokenizer.get_vocab() != teacher_tokenizer.get_vocab():
        raise BertliteError("Student and teacher tokenizers have different vocabularies: they must share one tokenizer.")
