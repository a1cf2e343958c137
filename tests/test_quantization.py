"""Dynamic int8 quantization: fidelity, save/reload, uneven (pruned) models, ONNX Runtime, QAT, CLI, errors."""

from __future__ import annotations

import importlib.util
import json
import os
import warnings

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification
from transformers.pytorch_utils import prune_linear_layer

from bertlite.errors import BertliteError
from bertlite.quantization import (
    QuantizationAccuracyWarning,
    compare_with_fp32,
    convert_qat,
    is_quantized_folder,
    load_quantized,
    prepare_qat,
    quantize_folder,
    quantize_model,
    quantize_weight,
    save_quantized,
)
from bertlite.quantization.backends.torch_backend import DynamicInt8Linear
from bertlite.quantization.embedding import Int8Embedding
from bertlite.quantization.qat import FakeQuantLinear
from bertlite.quantization.serialization import QUANTIZATION_CONFIG_NAME, WEIGHTS_NAME

# The optional backends' packages are extras (bertlite[torchao], bertlite[onnx]): their tests skip without them.
requires_torchao = pytest.mark.skipif(importlib.util.find_spec("torchao") is None, reason="torchao not installed")
requires_onnxruntime = pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None,
    reason="onnxruntime/onnx not installed")

# (backend, extra settings): every module backend and activation mode.
MODULE_BACKENDS = [
    pytest.param("torch", {"activations": "per_tensor"}, id="torch-per_tensor"),
    pytest.param("torch", {"activations": "per_token"}, id="torch-per_token"),
    pytest.param("torchao", {}, id="torchao", marks=requires_torchao),
]


def tiny_config(vocab_size: int = 100, **overrides) -> BertConfig:
    values = dict(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                  intermediate_size=64, max_position_embeddings=64, num_labels=2)
    values.update(overrides)
    return BertConfig(**values)


def tiny_model(seed: int = 0, **overrides) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    model = BertForSequenceClassification(tiny_config(**overrides)).eval()
    with torch.no_grad():  # a larger classifier so that logits differ visibly between inputs
        model.classifier.weight.normal_(0, 1.0)
    return model


def prune_unevenly(model: BertForSequenceClassification) -> BertForSequenceClassification:
    """Different head counts and FFN widths per layer, sliced the way structured pruning does."""
    head_size = model.config.hidden_size // model.config.num_attention_heads
    keep_heads = {0: [0, 2], 1: [1, 2, 3], 2: [3]}
    keep_ffn = {0: 40, 1: 64, 2: 17}
    for i, layer in enumerate(model.bert.encoder.layer):
        rows = torch.cat([torch.arange(h * head_size, (h + 1) * head_size) for h in keep_heads[i]])
        attention = layer.attention
        for name in ("query", "key", "value"):
            setattr(attention.self, name, prune_linear_layer(getattr(attention.self, name), rows, dim=0))
        attention.output.dense = prune_linear_layer(attention.output.dense, rows, dim=1)
        units = torch.arange(keep_ffn[i])
        layer.intermediate.dense = prune_linear_layer(layer.intermediate.dense, units, dim=0)
        layer.output.dense = prune_linear_layer(layer.output.dense, units, dim=1)
    return model


def batch(vocab_size: int = 100, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab_size, (4, 12), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0  # some padding
    return {"input_ids": ids, "attention_mask": mask}


@torch.no_grad()
def logits(model, inputs) -> torch.Tensor:
    return model(**inputs).logits


def assert_close_to_fp32(fp32, int8, inputs, tolerance=0.05):
    reference, quantized = logits(fp32, inputs), logits(int8, inputs)
    spread = (reference - reference.mean(0)).abs().max()
    assert spread > 0.1, "degenerate reference logits"
    assert not torch.equal(reference, quantized), "nothing was quantized"
    assert (reference - quantized).abs().max() < tolerance * spread


# Weight format -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("per_channel", [True, False])
def test_quantize_weight_rounds_to_nearest_within_range(per_channel):
    torch.manual_seed(0)
    weight = torch.randn(16, 24)
    weight[3] = 0.0  # an all-zero row must not divide by zero
    q = quantize_weight(weight, per_channel=per_channel)
    assert q.int8.dtype == torch.int8 and q.int8.min() >= -128 and q.int8.max() <= 127
    assert q.scale.shape == ((16,) if per_channel else (1,)) and torch.all(q.zero_point == 0)
    scale = q.scale.view(-1, 1) if per_channel else q.scale
    assert torch.all((q.dequantize() - weight).abs() <= scale / 2 + 1e-7)
    assert torch.equal(q.dequantize()[3], torch.zeros(24))


# Fidelity and module swapping ----------------------------------------------------------------------------------
@pytest.mark.parametrize("backend,settings", MODULE_BACKENDS)
def test_module_backends_stay_close_to_fp32(backend, settings):
    fp32 = tiny_model()
    int8 = quantize_model(fp32, backend=backend, **settings)
    assert_close_to_fp32(fp32, int8, batch())
    assert type(fp32.bert.encoder.layer[0].attention.self.query) is torch.nn.Linear, "the original must stay fp32"
    record = int8.bertlite_quantization
    assert len(record.linear_modules) == 3 * 6 + 1  # six Linears per layer plus the pooler
    assert record.fp32_linear_modules == ["classifier"]
    assert type(int8.classifier) is torch.nn.Linear


def test_keep_fp32_patterns_and_typos():
    fp32 = tiny_model()
    int8 = quantize_model(fp32, keep_fp32=["classifier", "bert.encoder.layer.0", "*.intermediate.dense"])
    kept = set(int8.bertlite_quantization.fp32_linear_modules)
    assert {"bert.encoder.layer.0.attention.self.query", "bert.encoder.layer.2.intermediate.dense", "classifier"} <= kept
    assert isinstance(int8.bert.encoder.layer[1].output.dense, DynamicInt8Linear)
    assert type(int8.bert.encoder.layer[0].output.dense) is torch.nn.Linear
    with pytest.raises(BertliteError, match="matches no Linear"):
        quantize_model(fp32, keep_fp32=["classifier", "bert.encoder.layer.9"])


def test_int8_embeddings_cut_size_and_stay_close(tmp_path):
    fp32 = tiny_model(vocab_size=2000)
    plain, with_embeddings = quantize_model(fp32), quantize_model(fp32, quantize_embeddings=True)
    assert isinstance(with_embeddings.bert.embeddings.word_embeddings, Int8Embedding)
    assert_close_to_fp32(fp32, with_embeddings, batch(2000))
    save_quantized(plain, tmp_path / "plain")
    save_quantized(with_embeddings, tmp_path / "emb")
    plain_size = os.path.getsize(tmp_path / "plain" / WEIGHTS_NAME)
    emb_size = os.path.getsize(tmp_path / "emb" / WEIGHTS_NAME)
    saved_bytes = 2000 * 32 * 3  # fp32 -> int8 for each of the 2000 x 32 entries (plus 2000 scales)
    assert plain_size - emb_size > 0.9 * saved_bytes


# Save / reload ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend,settings", MODULE_BACKENDS)
@pytest.mark.parametrize("embeddings", [False, True], ids=["fp32-emb", "int8-emb"])
def test_save_reload_is_bit_identical(tmp_path, backend, settings, embeddings):
    int8 = quantize_model(tiny_model(), backend=backend, quantize_embeddings=embeddings, **settings)
    save_quantized(int8, tmp_path)
    assert is_quantized_folder(tmp_path)
    assert not (tmp_path / "model.safetensors").exists(), "from_pretrained must not find float weights here"
    reloaded = load_quantized(tmp_path, compile=False)
    assert torch.equal(logits(int8, batch()), logits(reloaded, batch()))
    name = "bert.encoder.layer.1.intermediate.dense"
    original = int8.bertlite_quantization
    from bertlite.quantization.backends import get_backend

    impl = get_backend(backend)
    (w1, b1), (w2, b2) = impl.read_linear(int8.get_submodule(name)), impl.read_linear(reloaded.get_submodule(name))
    assert torch.equal(w1.int8, w2.int8) and torch.equal(w1.scale, w2.scale) and torch.equal(b1, b2)
    assert reloaded.bertlite_quantization.settings == original.settings


def test_saved_folder_contents_have_no_pickle(tmp_path):
    save_quantized(quantize_model(tiny_model()), tmp_path)
    from safetensors import safe_open

    with safe_open(str(tmp_path / WEIGHTS_NAME), "pt") as f:
        keys = set(f.keys())
        assert f.get_tensor("bert.encoder.layer.0.attention.self.query.weight_int8").dtype == torch.int8
    assert {"bert.encoder.layer.0.attention.self.query.weight_scale",
            "bert.encoder.layer.0.attention.self.query.weight_zero_point", "classifier.weight"} <= keys
    meta = json.loads((tmp_path / QUANTIZATION_CONFIG_NAME).read_text())
    assert meta["backend"] == "torch" and meta["resolved"]["activations"] == "per_tensor"
    assert not [f for f in os.listdir(tmp_path) if f.endswith((".bin", ".pt", ".pkl"))]


@requires_torchao
def test_reload_with_the_other_module_backend(tmp_path):
    fp32 = tiny_model()
    save_quantized(quantize_model(fp32, backend="torch"), tmp_path)
    as_torchao = load_quantized(tmp_path, backend="torchao", compile=False)
    assert type(as_torchao.bert.encoder.layer[0].output.dense.weight).__name__ == "Int8Tensor"
    assert_close_to_fp32(fp32, as_torchao, batch())


# Uneven (structurally pruned) models --------------------------------------------------------------------------------
@pytest.mark.parametrize("backend,settings", MODULE_BACKENDS)
def test_uneven_pruned_model_quantizes_and_reloads(tmp_path, backend, settings):
    fp32 = prune_unevenly(tiny_model())
    # layer 2 (one head, 17 FFN units) stays fp32: the loader must size it from the file, not from the config
    int8 = quantize_model(fp32, backend=backend, keep_fp32=["classifier", "bert.encoder.layer.2"], **settings)
    assert int8.get_submodule("bert.encoder.layer.0.attention.self.query")
    assert_close_to_fp32(fp32, int8, batch())
    save_quantized(int8, tmp_path)
    reloaded = load_quantized(tmp_path, compile=False)
    assert reloaded.bert.encoder.layer[2].intermediate.dense.weight.shape == (17, 32)
    assert torch.equal(logits(int8, batch()), logits(reloaded, batch()))


# ONNX Runtime ---------------------------------------------------------------------------------------------------------
@requires_onnxruntime
@pytest.mark.parametrize("prune", [False, True], ids=["even", "uneven"])
def test_onnx_artifact_runs_in_onnxruntime_and_agrees_with_torch_int8(tmp_path, prune):
    import onnxruntime

    fp32 = tiny_model()
    if prune:
        fp32 = prune_unevenly(fp32)
    torch_int8 = quantize_model(fp32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the uneven model may fall back to the unfused graph, with a warning
        onnx_int8 = quantize_model(fp32, backend="onnxruntime")
    save_quantized(onnx_int8, tmp_path)
    files = os.listdir(tmp_path)
    assert "model_int8.onnx" in files and not [f for f in files if f.endswith(".data")], "must be self-contained"
    session = onnxruntime.InferenceSession(str(tmp_path / "model_int8.onnx"), providers=["CPUExecutionProvider"])
    inputs = batch()
    feeds = {i.name: (inputs[i.name] if i.name in inputs else torch.zeros_like(inputs["input_ids"])).numpy()
             for i in session.get_inputs()}
    onnx_logits = torch.from_numpy(session.run(None, feeds)[0])
    op_types = {n.op_type for n in __import__("onnx").load(str(tmp_path / "model_int8.onnx")).graph.node}
    assert op_types & {"MatMulInteger", "QAttention", "DynamicQuantizeLinear"}, "the graph is not int8"
    reference = logits(torch_int8, inputs)
    spread = (reference - reference.mean(0)).abs().max()
    assert (onnx_logits - reference).abs().max() < 0.05 * spread
    assert torch.equal(onnx_logits.argmax(-1), reference.argmax(-1))
    reloaded = load_quantized(tmp_path)
    assert torch.equal(logits(reloaded, inputs), onnx_logits)


@requires_onnxruntime
def test_onnx_keeps_requested_layers_in_fp32():
    import onnx

    int8 = quantize_model(tiny_model(), backend="onnxruntime",
                          keep_fp32=["classifier", "bert.encoder.layer.1.intermediate.dense"])
    nodes = {n.name: n.op_type for n in onnx.load_from_string(int8.onnx_bytes).graph.node}
    assert nodes["/model/bert/encoder/layer.1/intermediate/dense/MatMul"] == "MatMul"
    assert nodes["/model/bert/encoder/layer.0/intermediate/dense/MatMul_quant"] == "MatMulInteger"


# Fidelity check ---------------------------------------------------------------------------------------------------------
def test_check_names_the_broken_layer(minilm_tokenizer):
    from datasets import Dataset

    texts = ["a wonderful, moving film", "great acting and a clever plot", "I loved every minute of it",
             "funny, warm and beautifully shot", "a dull, lifeless mess", "the worst script in years",
             "boring and far too long", "I hated the ending"]
    data = Dataset.from_dict({"text": texts, "label": [1, 1, 1, 1, 0, 0, 0, 0]})
    fp32 = tiny_model(vocab_size=minilm_tokenizer.vocab_size)
    enc = minilm_tokenizer(texts, padding=True, return_tensors="pt")
    optimizer = torch.optim.AdamW(fp32.parameters(), lr=1e-2)
    fp32.train()
    for _ in range(30):  # fit the eight sentences: confident labels, so that agreement means something
        fp32(**enc, labels=torch.tensor(data["label"])).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    fp32.eval()
    int8 = quantize_model(fp32)
    report = compare_with_fp32(fp32, int8, minilm_tokenizer, data, warn=False)
    assert report.fp32_accuracy == 1.0 and report.ok and report.label_agreement == 1.0
    broken = "bert.encoder.layer.2.output.dense"
    int8.get_submodule(broken).weight_int8.neg_()  # a badly quantized layer
    int8.get_submodule(broken)._prepare_kernel()
    with pytest.warns(QuantizationAccuracyWarning, match=broken):
        report = compare_with_fp32(fp32, int8, minilm_tokenizer, data)
    assert report.worst_layers[0].name == broken and not report.ok and report.accuracy_drop_points > 0.5


# Quantization-aware training ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend,settings", MODULE_BACKENDS)
def test_qat_trains_and_converts_to_the_same_int8_format(tmp_path, backend, settings):
    model = tiny_model()
    keys = list(model.state_dict())
    prepare_qat(model, backend=backend, **settings)
    assert isinstance(model.bert.encoder.layer[0].output.dense, FakeQuantLinear)
    assert type(model.classifier) is torch.nn.Linear and list(model.state_dict()) == keys
    inputs, labels = batch(), torch.tensor([0, 1, 1, 0])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    before = model.bert.encoder.layer[0].output.dense.weight.detach().clone()
    model.train()
    losses = []
    for _ in range(10):
        loss = model(**inputs, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    model.eval()
    assert losses[-1] < losses[0], "straight-through gradients must train the weights"
    assert not torch.equal(before, model.bert.encoder.layer[0].output.dense.weight)
    int8 = convert_qat(model)
    # the QAT forward pass already computed what the int8 model computes
    assert (logits(model, inputs) - logits(int8, inputs)).abs().max() < 1e-3
    save_quantized(int8, tmp_path)
    assert torch.equal(logits(int8, inputs), logits(load_quantized(tmp_path, compile=False), inputs))


# Folders, CLI, errors ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def minilm_tokenizer():
    from bertlite.loading import load_tokenizer

    return load_tokenizer("minilm")


@pytest.fixture()
def fp32_folder(tmp_path, minilm_tokenizer):
    from bertlite.record import CompressionConfig

    folder = tmp_path / "student"
    tiny_model(vocab_size=minilm_tokenizer.vocab_size).save_pretrained(folder)
    minilm_tokenizer.save_pretrained(folder)
    history = CompressionConfig(base_model="sentence-transformers/all-MiniLM-L6-v2")
    history.add_step("distillation", temperature=2.0)
    history.save_pretrained(str(folder))
    return folder


def test_cli_quantizes_a_folder(fp32_folder, tmp_path, capsys):
    from bertlite.cli import main
    from bertlite.record import CompressionConfig

    out = tmp_path / "student-int8"
    code = main(["quantize", "--model", str(fp32_folder), "--output-dir", str(out), "--keep-fp32",
                 "bert.encoder.layer.0.output.dense", "--keep-fp32-model"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "int8 model (torch) written to" in printed and "label agreement" in printed
    assert printed.splitlines()[-1] == f"Load it with: bertlite.load_compressed({str(out)!r})"
    assert is_quantized_folder(out) and (out / "tokenizer.json").exists() and (out / "fp32" / "model.safetensors").exists()
    history = CompressionConfig.from_pretrained(str(out))
    assert history.methods == ["distillation", "quantization"]
    assert "bert.encoder.layer.0.output.dense" in history.steps[-1].params["fp32_layers"]
    assert history.metrics["quantization"]["int8_mb"] < history.metrics["quantization"]["fp32_mb"]
    model = load_quantized(out)
    assert type(model.bert.encoder.layer[0].output.dense) is torch.nn.Linear


def test_load_compressed_dispatches_to_the_int8_loader(fp32_folder, tmp_path):
    from bertlite import load_compressed
    from bertlite.hub.folder import ModelFolder
    from bertlite.hub.formats import select_format

    out, _ = quantize_folder(str(fp32_folder), str(tmp_path / "int8"))
    assert select_format(ModelFolder.inspect(out)).name == "int8"
    model = load_compressed(out)
    assert model.compression_config.methods == ["distillation", "quantization"]
    inputs = batch(vocab_size=model.config.vocab_size)
    assert torch.equal(logits(model, inputs), logits(load_quantized(out), inputs))
    with pytest.raises(BertliteError, match="torch_dtype"):
        load_compressed(out, torch_dtype=torch.float16)


@requires_onnxruntime
def test_quantize_folder_python_api_on_onnxruntime(fp32_folder, tmp_path):
    out, report = quantize_folder(str(fp32_folder), str(tmp_path / "onnx"), backend="onnxruntime")
    assert report.label_agreement is not None and "standing in" in report.layer_errors_note
    assert os.path.isfile(os.path.join(out, "model_int8.onnx")) and is_quantized_folder(out)


def test_bad_input_gives_clear_errors(tmp_path, fp32_folder, capsys):
    from bertlite.cli import main

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BertliteError, match="no config.json"):
        quantize_folder(str(empty))
    no_weights = tmp_path / "no_weights"
    tiny_config().save_pretrained(no_weights)
    with pytest.raises(BertliteError, match="Could not load a model"):
        quantize_folder(str(no_weights))
    with pytest.raises(BertliteError, match="Unknown quantization backend"):
        quantize_model(tiny_model(), backend="tensorrt")
    with pytest.raises(BertliteError, match="holds no bertlite int8 model"):
        load_quantized(fp32_folder)
    if importlib.util.find_spec("onnxruntime"):
        with pytest.raises(BertliteError, match="per_tensor"):
            quantize_model(tiny_model(), backend="onnxruntime", activations="per_token")
    assert main(["quantize", "--model", str(empty)]) == 1
    assert "no config.json" in capsys.readouterr().err
    int8_folder = tmp_path / "int8"
    save_quantized(quantize_model(tiny_model()), int8_folder)
    with pytest.raises(BertliteError, match="already holds an int8 model"):
        quantize_folder(str(int8_folder))
    with pytest.raises(OSError):  # a plain from_pretrained refuses the folder instead of loading random weights
        BertForSequenceClassification.from_pretrained(int8_folder)


@pytest.mark.parametrize("backend,package", [("torchao", "torchao"), ("onnxruntime", "onnxruntime")])
def test_missing_backend_package_says_what_to_install(monkeypatch, backend, package):
    import bertlite.quantization.backends.onnxruntime_backend as ort_module
    import bertlite.quantization.backends.torchao_backend as torchao_module

    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == package else real_find_spec(name, *args)

    for module in (ort_module, torchao_module):
        monkeypatch.setattr(module.importlib.util, "find_spec", find_spec)
    with pytest.raises(BertliteError, match=f"pip install '{package}"):
        quantize_model(tiny_model(), backend=backend)


# The packaged MiniLM on real sentences --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def minilm_and_sentences():
    from transformers import AutoModelForSequenceClassification

    from bertlite.data import load_task
    from bertlite.loading import resolve_model_name

    torch.manual_seed(0)  # the packaged MiniLM has no classifier: a seeded random one
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoModelForSequenceClassification.from_pretrained(resolve_model_name("minilm"), num_labels=2).eval()
    sentences = load_task("rotten_tomatoes")[0]["test"].select(range(128))
    return model, sentences


def test_minilm_on_real_sentences(minilm_and_sentences, minilm_tokenizer):
    """Seeded random head on real test sentences. Its margins are small (median ~0.015), so a handful of
    near-ties flip: the >= 99% agreement bar is checked on a fine-tuned head in the slow test below."""
    from bertlite.evaluation import predict

    model, sentences = minilm_and_sentences
    reference = predict(model, minilm_tokenizer, sentences, desc=False)
    margins = reference[:, 0] - reference[:, 1]
    assert 0.1 < (margins > 0).float().mean() < 0.9, "a head that always says the same label checks nothing"
    errors = {}
    # Agreement measured over head seeds 0-2: per_tensor 87.5-94.5%, per_token 96.9-99.2%.
    for activations, min_agreement in (("per_tensor", 0.85), ("per_token", 0.95)):
        int8 = predict(quantize_model(model, activations=activations), minilm_tokenizer, sentences, desc=False)
        errors[activations] = float((int8 - reference).abs().mean())
        assert errors[activations] < 0.2 * float(margins.std()), "int8 noise must be small next to the logit spread"
        assert (int8.argmax(-1) == reference.argmax(-1)).float().mean() >= min_agreement
    # MiniLM's [CLS] token carries outliers: per-token activation scales are the more faithful choice
    assert errors["per_token"] < 0.5 * errors["per_tensor"]


@pytest.mark.slow
def test_finetuned_minilm_keeps_labels_and_accuracy(minilm_tokenizer):
    """The issue's bar: >= 99% label agreement on the rotten_tomatoes test split, on a briefly fine-tuned MiniLM
    (a random head has too little margin for argmax agreement to reach that; see docs/quantization.md)."""
    from transformers import AutoModelForSequenceClassification

    from bertlite.data import load_task
    from bertlite.loading import resolve_model_name

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoModelForSequenceClassification.from_pretrained(resolve_model_name("minilm"), num_labels=2)
    dsd, _ = load_task("rotten_tomatoes")
    train = dsd["train"].shuffle(seed=0).select(range(480))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    for start in range(0, len(train), 16):
        part = train[start:start + 16]
        enc = minilm_tokenizer(part["text"], truncation=True, max_length=64, padding=True, return_tensors="pt")
        model(**enc, labels=torch.tensor(part["label"])).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    report = compare_with_fp32(model, quantize_model(model, activations="per_token"), minilm_tokenizer, dsd["test"])
    assert report.label_agreement >= 0.99 and abs(report.accuracy_drop_points) <= 0.5
    default = compare_with_fp32(model, quantize_model(model), minilm_tokenizer, dsd["test"], warn=False)
    assert default.label_agreement >= 0.97


# PT2E (torch.export + X86InductorQuantizer + inductor) --------------------------------------------------------
def _int8_constants(graph_module) -> list[torch.Tensor]:
    import functools

    def get(target):
        return functools.reduce(getattr, target.split("."), graph_module)

    return [get(n.target) for n in graph_module.graph.nodes
            if n.op == "get_attr" and isinstance(get(n.target), torch.Tensor) and get(n.target).dtype == torch.int8]


@requires_torchao
@pytest.mark.parametrize("backend,settings", MODULE_BACKENDS)
def test_pt2e_graph_holds_the_saved_integers_and_matches_eager_int8(tmp_path, backend, settings):
    from bertlite.quantization import compile_pt2e
    from bertlite.quantization.backends import get_backend

    int8 = quantize_model(prune_unevenly(tiny_model()), backend=backend, **settings)
    save_quantized(int8, tmp_path)
    reloaded = load_quantized(tmp_path)
    lowered = compile_pt2e(reloaded, compile=False)  # the quantized graph without inductor: same numbers, fast to build
    inputs = batch()
    graph = lowered.graph(*inputs["input_ids"].shape)
    constants = _int8_constants(graph)
    impl = get_backend(backend)
    saved = [impl.read_linear(reloaded.get_submodule(name))[0].int8 for name in reloaded.bertlite_quantization.linear_modules]
    # Every Linear's int8 matrix is in the graph exactly: PT2E did not re-quantize the dequantized weights.
    assert all(any(c.shape == q.shape and torch.equal(c, q) for c in constants) for q in saved)
    assert len(saved) == len(reloaded.bertlite_quantization.linear_modules) > 10
    reference = logits(int8, inputs)
    spread = (reference - reference.mean(0)).abs().max()
    # Activations are quantized per tensor by PT2E (per token by some eager modes): close, not identical.
    assert (logits(lowered, inputs) - reference).abs().max() < 0.05 * spread


@requires_torchao
def test_pt2e_pads_to_buckets_and_slices_back():
    from bertlite.quantization import compile_pt2e

    int8 = quantize_model(tiny_model(), backend="torch")
    lowered = compile_pt2e(int8, seq_buckets=(16, 32), batch_buckets=(4, 8), compile=False)
    inputs = batch()  # 4 x 12: padded to 4 x 16
    small = {k: v[:3, :10] for k, v in inputs.items()}  # 3 x 10: the same bucket, so the same graph
    full, part = logits(lowered, inputs), logits(lowered, small)
    assert full.shape == (4, 2) and part.shape == (3, 2)
    assert list(lowered._graphs) == [(4, 16)]
    # Padding positions and rows are masked: a row's logits do not depend on what else is in the batch.
    alone = logits(lowered, {k: v[:1, :10] for k, v in small.items()})
    assert torch.allclose(alone[0], part[0], atol=1e-2 * (full.abs().max() + 1))
    with pytest.raises(BertliteError, match="largest compiled bucket"):
        lowered(input_ids=torch.ones(4, 40, dtype=torch.long))


@requires_torchao
def test_pt2e_compiles_and_agrees_with_its_uncompiled_graph(tmp_path):
    int8 = quantize_model(tiny_model(), backend="torch")
    save_quantized(int8, tmp_path)
    compiled = load_quantized(tmp_path, compile="pt2e")
    from bertlite.quantization import compile_pt2e

    reference = compile_pt2e(load_quantized(tmp_path), compile=False)
    inputs = batch()
    assert torch.allclose(logits(compiled, inputs), logits(reference, inputs), atol=1e-3)


def test_pt2e_needs_a_quantized_model(tmp_path):
    from bertlite.quantization import compile_pt2e

    with pytest.raises(BertliteError, match="quantize the fp32 model first"):
        compile_pt2e(tiny_model())
    save_quantized(quantize_model(tiny_model(), backend="torch"), tmp_path)
    with pytest.raises(BertliteError, match="compile="):
        load_quantized(tmp_path, compile="fast")


def test_compiled_int8_leaves_process_wide_inductor_settings_alone():
    import torch._inductor.config as inductor_config

    from bertlite.quantization import compile_for_inference

    before, precision = inductor_config.get_config_copy(), torch.get_float32_matmul_precision()
    model = quantize_model(tiny_model())
    compiled = compile_for_inference(model)
    assert compiled.config is model.config  # attributes read through, as pipelines and cards need
    assert compiled.flags.get("freezing") is True  # what it runs with
    assert all(getattr(inductor_config, key) == before[key] for key in compiled.flags)  # ... and only then
    assert torch.get_float32_matmul_precision() == precision
