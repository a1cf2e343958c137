"""Surgery and the Bertlite model classes: pruned == gated, exact parameter counts, save/reload, remote code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from structured_fixtures import HEAD_SIZE, HEADS, LAYERS, VOCAB, removed_parameter_count, tiny_classifier, tiny_inputs
from transformers import AutoModelForSequenceClassification, BertForMaskedLM, BertModel

import bertlite  # noqa: F401  (registers the Auto classes)
from bertlite.errors import BertliteError
from bertlite.modeling import BertliteConfig, BertliteForMaskedLM, BertliteForSequenceClassification, BertliteModel
from bertlite.pruning.structured import (
    UnitGates,
    layer_shapes,
    prune_model,
)

HEAD_PLAN = {0: [1, 3], 1: [0], 2: [0, 1, 2]}
FFN_PLAN = {0: list(range(0, 64, 2)), 1: [5, 7, 60], 2: list(range(40))}


def gated_logits(model, heads, ffn, inputs):
    gates = UnitGates(model)
    gates.mask_heads(heads)
    gates.mask_neurons(ffn)
    with gates, torch.no_grad():
        return model(**inputs).logits


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_pruning_gated_units_leaves_logits_unchanged(attn):
    model = tiny_classifier()
    model.set_attn_implementation(attn)
    inputs = tiny_inputs()
    expected = gated_logits(model, HEAD_PLAN, FFN_PLAN, inputs)
    pruned = prune_model(model, heads=HEAD_PLAN, ffn=FFN_PLAN)
    assert isinstance(pruned, BertliteForSequenceClassification)
    assert pruned.config._attn_implementation == attn
    with torch.no_grad():
        got = pruned(**inputs).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    with torch.no_grad():  # and the gates really changed the output: the test would notice a wrong slice
        assert (model(**inputs).logits - expected).abs().max() > 1e-4


def test_parameter_count_drops_by_exactly_the_removed_rows_and_columns():
    model = tiny_classifier()
    pruned = prune_model(model, heads=HEAD_PLAN, ffn=FFN_PLAN)
    before = sum(p.numel() for p in model.parameters())
    after = sum(p.numel() for p in pruned.parameters())
    assert before - after == removed_parameter_count(HEAD_PLAN, FFN_PLAN)
    assert [(s.heads, s.ffn) for s in layer_shapes(pruned)] == [(2, 32), (3, 61), (1, 24)]
    assert pruned.config.layer_num_attention_heads == [2, 3, 1]
    assert pruned.config.layer_intermediate_sizes == [32, 61, 24]
    assert pruned.config.num_attention_heads == HEADS  # the unpruned sizes stay on record


def test_whole_blocks_can_be_removed_and_eager_attentions_are_returned():
    model = tiny_classifier()
    model.set_attn_implementation("eager")
    heads = {1: list(range(HEADS))}
    ffn = {2: list(range(64))}
    inputs = tiny_inputs()
    expected = gated_logits(model, heads, ffn, inputs)
    pruned = prune_model(model, heads=heads, ffn=ffn)
    with torch.no_grad():
        out = pruned(**inputs, output_attentions=True, output_hidden_states=True)
    torch.testing.assert_close(out.logits, expected, atol=1e-5, rtol=0)
    assert [tuple(a.shape) for a in out.attentions] == [(3, 4, 9, 9), (3, 0, 9, 9), (3, 4, 9, 9)]
    assert len(out.hidden_states) == LAYERS + 1


def test_pruning_a_pruned_model_again_uses_its_current_numbering():
    model = tiny_classifier()
    once = prune_model(model, heads={0: [0]}, ffn={1: [0, 1]})
    twice = prune_model(once, heads={0: [0]}, ffn={1: [0]})  # current head 0 of layer 0 is original head 1
    inputs = tiny_inputs()
    expected = gated_logits(model, {0: [0, 1]}, {1: [0, 1, 2]}, inputs)
    with torch.no_grad():
        torch.testing.assert_close(twice(**inputs).logits, expected, atol=1e-5, rtol=0)
    assert twice.config.layer_num_attention_heads == [2, 4, 4]


def test_masked_lm_and_base_model_keep_their_heads_and_tying():
    mlm = tiny_classifier(model_class=BertForMaskedLM)
    pruned = prune_model(mlm, heads={0: [2]}, ffn={0: [1, 2]})
    assert isinstance(pruned, BertliteForMaskedLM)
    assert pruned.cls.predictions.decoder.weight is pruned.bert.embeddings.word_embeddings.weight
    inputs = tiny_inputs()
    with torch.no_grad():
        torch.testing.assert_close(pruned(**inputs).logits, gated_logits(mlm, {0: [2]}, {0: [1, 2]}, inputs), atol=1e-5, rtol=0)
    base = tiny_classifier(model_class=BertModel)
    assert isinstance(prune_model(base, heads={1: [0]}), BertliteModel)


def test_bad_plans_give_clear_errors():
    model = tiny_classifier()
    with pytest.raises(BertliteError, match="indices 0..3"):
        prune_model(model, heads={0: [4]})
    with pytest.raises(BertliteError, match="duplicates"):
        prune_model(model, ffn={0: [1, 1]})
    with pytest.raises(BertliteError, match="3 layers"):
        prune_model(model, heads={5: [0]})


def test_save_and_reload_with_auto_class_gives_identical_logits(tmp_path):
    pruned = prune_model(tiny_classifier(), heads=HEAD_PLAN, ffn=FFN_PLAN)
    pruned.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "bertlite"
    assert config["auto_map"]["AutoModelForSequenceClassification"] == "modeling_bertlite.BertliteForSequenceClassification"
    assert {"configuration_bertlite.py", "modeling_bertlite.py", "model.safetensors"} <= set(os.listdir(tmp_path))
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert isinstance(reloaded, BertliteForSequenceClassification)
    assert isinstance(reloaded.config, BertliteConfig)
    inputs = tiny_inputs()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs).logits, pruned(**inputs).logits, atol=0, rtol=0)


def test_layers_are_bert_modules_with_pruned_linear_shapes():
    """The layers are built by BERT's constructors (scaling, layer index, causality come from transformers)."""
    pruned = prune_model(tiny_classifier(), heads={1: list(range(HEADS))}, ffn=FFN_PLAN)
    for i, layer in enumerate(pruned.bert.encoder.layer):
        attention = layer.attention.self
        assert (attention.layer_idx, attention.is_causal, attention.scaling) == (i, False, HEAD_SIZE**-0.5)
        assert attention.query.out_features == attention.all_head_size == attention.num_attention_heads * HEAD_SIZE
        assert layer.output.dense.in_features == layer.intermediate.dense.out_features == pruned.config.layer_intermediate_sizes[i]
    assert pruned.bert.encoder.layer[1].attention.output.dense.in_features == 0


def test_pruned_folder_and_its_int8_copy_load_with_load_compressed(tmp_path):
    """A pruned folder (one layer without attention) reloads through bertlite's one loader with identical logits,
    and so does its int8 copy (the empty attention projections stay fp32: nothing to quantize)."""
    from bertlite import load_compressed
    from bertlite.quantization import load_quantized, quantize_model, save_quantized

    pruned = prune_model(tiny_classifier(), heads={1: list(range(HEADS)), 2: [0]}, ffn=FFN_PLAN).eval()
    pruned.save_pretrained(tmp_path / "pruned")
    inputs = tiny_inputs()
    with torch.no_grad():
        torch.testing.assert_close(load_compressed(str(tmp_path / "pruned"))(**inputs).logits, pruned(**inputs).logits,
                                   atol=0, rtol=0)
    int8 = quantize_model(load_compressed(str(tmp_path / "pruned")))
    assert "bert.encoder.layer.1.attention.output.dense" in int8.bertlite_quantization.fp32_linear_modules
    save_quantized(int8, tmp_path / "int8")
    reloaded = load_compressed(str(tmp_path / "int8"))
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs).logits, int8(**inputs).logits, atol=0, rtol=0)
        torch.testing.assert_close(load_quantized(tmp_path / "int8")(**inputs).logits, int8(**inputs).logits, atol=0, rtol=0)
        torch.testing.assert_close(int8(**inputs).logits, pruned(**inputs).logits, atol=0.05, rtol=0)


def test_copied_modeling_code_is_self_contained():
    from bertlite.modeling import configuration_bertlite, modeling_bertlite

    for module in (configuration_bertlite, modeling_bertlite):
        source = open(module.__file__).read()
        imported = {line.split()[1].split(".")[0] for line in source.splitlines() if line.startswith(("import ", "from "))}
        assert imported <= {"torch", "transformers", "warnings", "", "configuration_bertlite"}, imported


def test_remote_code_loads_without_bertlite(tmp_path):
    pruned = prune_model(tiny_classifier(), heads={0: [1, 3], 1: list(range(HEADS))}, ffn=FFN_PLAN)
    folder = tmp_path / "pruned"
    pruned.save_pretrained(folder)
    inputs = tiny_inputs()
    with torch.no_grad():
        expected = pruned(**inputs).logits
    script = textwrap.dedent(f"""
        import json, sys
        sys.modules["bertlite"] = None  # make `import bertlite` fail, as for a user without it
        import torch
        from transformers import AutoModelForSequenceClassification
        model = AutoModelForSequenceClassification.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()
        assert "bertlite" not in type(model).__module__.split(".")[0], type(model).__module__
        ids = torch.tensor({inputs["input_ids"].tolist()}); mask = torch.tensor({inputs["attention_mask"].tolist()})
        with torch.no_grad():
            print("LOGITS" + json.dumps(model(input_ids=ids, attention_mask=mask).logits.tolist()))
    """)
    env = {**os.environ, "PYTHONPATH": "", "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("LOGITS"))
    torch.testing.assert_close(torch.tensor(json.loads(line[len("LOGITS"):])), expected, atol=1e-6, rtol=0)


def test_import_bertlite_is_side_effect_free_and_loaders_register_the_model_type(tmp_path):
    folder = tmp_path / "pruned"
    prune_model(tiny_classifier(), heads={0: [1]}).save_pretrained(folder)
    (folder / "configuration_bertlite.py").unlink()  # no shipped code: only the registered classes can load it
    (folder / "modeling_bertlite.py").unlink()
    script = textwrap.dedent(f"""
        import os, sys
        finders, env = list(sys.meta_path), dict(os.environ)
        import bertlite
        assert sys.meta_path == finders, "import bertlite must not install import hooks"
        assert dict(os.environ) == env, "import bertlite must not change the environment"
        assert "torch" not in sys.modules, "import bertlite must stay cheap"
        model = bertlite.load_compressed({str(folder)!r})  # bertlite's loader registers the type itself
        print("LOADED", type(model).__module__, type(model).__name__)
        from transformers import AutoModelForSequenceClassification
        model = AutoModelForSequenceClassification.from_pretrained({str(folder)!r})  # plain transformers, afterwards
        print("CLASS", type(model).__module__, type(model).__name__)
    """)
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(bertlite.__file__)), "OMP_WAIT_POLICY": "PASSIVE"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "LOADED bertlite.modeling.modeling_bertlite BertliteForSequenceClassification" in result.stdout
    assert "CLASS bertlite.modeling.modeling_bertlite BertliteForSequenceClassification" in result.stdout


def test_unsupported_models_are_refused():
    from transformers import RobertaConfig, RobertaForSequenceClassification

    roberta = RobertaForSequenceClassification(RobertaConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                                             intermediate_size=64, vocab_size=VOCAB))
    with pytest.raises(BertliteError, match="model_type"):
        prune_model(roberta, heads={0: [0]})
