"""Layer maps and students built from the teacher."""

import pytest
import torch

from bertlite.errors import BertliteError
from bertlite.distillation.layer_map import resolve_layer_map
from bertlite.distillation.student import build_student, default_layer_ids

from conftest import tiny_config, tiny_model


def test_layer_map_strategies():
    assert resolve_layer_map("uniform", 3, 6) == [(1, 2), (2, 4), (3, 6)]
    assert resolve_layer_map("uniform", 4, 12) == [(1, 3), (2, 6), (3, 9), (4, 12)]
    assert resolve_layer_map("last", 2, 6) == [(1, 5), (2, 6)]
    assert resolve_layer_map("first", 2, 6) == [(1, 1), (2, 2)]
    assert resolve_layer_map("1:1,2:6", 2, 6) == [(1, 1), (2, 6)]
    assert resolve_layer_map([[1, 3], [2, 5]], 2, 6) == [(1, 3), (2, 5)]


@pytest.mark.parametrize("spec,match", [("1:7", "teacher has layers 1..6"), ("4:2", "student has layers 1..3"),
                                        ("1:2,1:3", "mapped twice"), ("sideways", "Invalid layer map"), ("1-2", "Invalid")])
def test_layer_map_errors(spec, match):
    with pytest.raises(BertliteError, match=match):
        resolve_layer_map(spec, 3, 6)


def test_default_layer_ids():
    assert default_layer_ids(3, 6) == [0, 2, 4]
    assert default_layer_ids(6, 12) == [0, 2, 4, 6, 8, 10]
    assert default_layer_ids(4, 6) == [0, 2, 3, 5]
    with pytest.raises(BertliteError):
        default_layer_ids(7, 6)


def test_student_from_layers_holds_exactly_those_weights():
    teacher = tiny_model()
    student = build_student(teacher, layer_ids=[1, 3])
    assert student.config.num_hidden_layers == 2 and len(student.bert.encoder.layer) == 2
    for s_idx, t_idx in enumerate([1, 3]):
        s_state = student.bert.encoder.layer[s_idx].state_dict()
        t_state = teacher.bert.encoder.layer[t_idx].state_dict()
        assert s_state.keys() == t_state.keys()
        assert all(torch.equal(s_state[k], t_state[k]) for k in s_state)
    assert torch.equal(student.bert.embeddings.word_embeddings.weight, teacher.bert.embeddings.word_embeddings.weight)
    assert torch.equal(student.classifier.weight, teacher.classifier.weight)
    # A copy, not shared storage: training the student must not move the teacher.
    student.classifier.weight.data.add_(1.0)
    assert not torch.equal(student.classifier.weight, teacher.classifier.weight)


def test_full_depth_student_equals_teacher_outputs():
    teacher = tiny_model()
    student = build_student(teacher, num_layers=4)
    ids = torch.randint(5, 100, (2, 7))
    assert torch.allclose(student(input_ids=ids).logits, teacher(input_ids=ids).logits)


def test_narrow_student_shapes_and_errors(tmp_path):
    teacher = tiny_model()
    student = build_student(teacher, num_layers=2, hidden_size=16, intermediate_size=24, num_attention_heads=2)
    assert (student.config.hidden_size, student.config.intermediate_size, student.config.num_attention_heads) == (16, 24, 2)
    assert student.bert.encoder.layer[0].intermediate.dense.out_features == 24
    with pytest.raises(BertliteError, match="divisible"):
        build_student(teacher, num_layers=2, hidden_size=18, num_attention_heads=4)
    with pytest.raises(BertliteError, match="outside"):
        build_student(teacher, layer_ids=[0, 9])
    # A saved student built from layers reloads as a normal model with the right depth.
    student = build_student(teacher, num_layers=2)
    student.save_pretrained(tmp_path)
    from transformers import AutoModelForSequenceClassification

    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    ids = torch.randint(5, 100, (1, 6))
    assert reloaded.config.num_hidden_layers == 2
    assert torch.allclose(reloaded(input_ids=ids).logits, student.eval()(input_ids=ids).logits, atol=1e-6)


def test_a_headless_student_gets_the_teachers_head_when_the_width_fits(tmp_path):
    from transformers import BertModel

    from bertlite.distillation.student import load_student

    teacher = tiny_model(seed=0)
    encoder = tmp_path / "encoder"
    teacher.bert.save_pretrained(encoder)  # the teacher's own encoder, saved without its head (like a general student)
    notes = []
    student, copied = load_student(str(encoder), 2, teacher, log=notes.append)
    student.eval()
    ids = torch.randint(5, 100, (3, 9))
    # Encoder and head now both equal the teacher's: the student predicts exactly what the teacher does.
    assert torch.allclose(student(input_ids=ids).logits, teacher(input_ids=ids).logits, atol=1e-6)
    assert copied == ["pooler", "classifier"] and "copied the teacher's" in notes[0]

    fresh, copied = load_student(str(encoder), 2, teacher, head="fresh")
    assert not torch.equal(fresh.classifier.weight, teacher.classifier.weight) and copied == []

    narrow = tmp_path / "narrow"
    BertModel(tiny_config(hidden_size=16, num_attention_heads=2)).save_pretrained(narrow)
    notes.clear()
    student, copied = load_student(str(narrow), 2, teacher, log=notes.append)
    assert copied == [] and "starts random" in notes[0]

    with_head = tmp_path / "with_head"
    own = tiny_model(seed=7)
    own.save_pretrained(with_head)  # a student that has its own classifier keeps it
    assert torch.equal(load_student(str(with_head), 2, teacher)[0].classifier.weight, own.classifier.weight)
    with pytest.raises(BertliteError, match="'teacher' or 'fresh'"):
        load_student(str(encoder), 2, teacher, head="mine")


def test_student_init_describes_what_build_student_does(tiny_teacher):
    from bertlite.distillation.student import student_init

    assert student_init(tiny_teacher.config, num_layers=2) == {"from_teacher_layers": [0, 2]}
    narrow = student_init(tiny_teacher.config, num_layers=2, hidden_size=16, num_attention_heads=2, seed=3)
    assert narrow == {"random_init_seed": 3, "num_hidden_layers": 2, "hidden_size": 16, "intermediate_size": 64, "num_attention_heads": 2}
    student = build_student(tiny_teacher, num_layers=2, hidden_size=16, num_attention_heads=2, seed=3)
    assert (student.config.num_hidden_layers, student.config.hidden_size, student.config.num_attention_heads) == (2, 16, 2)
    with pytest.raises(BertliteError, match="at least 1 layer"):
        build_student(tiny_teacher, num_layers=0)  # was silently a full-depth copy
