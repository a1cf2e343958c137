"""int8 folders are not trusted blindly (issue 16, item 5).

Each case edits a saved int8 folder the way a user, a bad copy or an attacker might, and asserts that loading
fails with the one error type, on one line, naming the bad entry, instead of loading silently with other logits
or escaping as a raw AttributeError/KeyError/SafetensorError.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import warnings

import pytest
import torch
from conftest import tiny_model
from hub_server import HubServer
from safetensors import safe_open
from safetensors.torch import save_file

import bertlite
from bertlite.errors import BertliteError
from bertlite.quantization import Int8FolderError, load_quantized, quantize_folder, quantize_model, save_quantized
from bertlite.quantization.serialization import QUANTIZATION_CONFIG_NAME, WEIGHTS_NAME

requires_torchao = pytest.mark.skipif(importlib.util.find_spec("torchao") is None, reason="torchao not installed")
requires_onnxruntime = pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None,
    reason="onnxruntime/onnx not installed")

QUERY = "bert.encoder.layer.0.attention.self.query"  # a square (32 x 32) int8 layer
FFN = "bert.encoder.layer.1.intermediate.dense"  # a 64 x 32 int8 layer
OTHER_BACKEND = {"torch": "torchao", "torchao": "torch"}


def inputs():
    generator = torch.Generator().manual_seed(3)
    ids = torch.randint(5, 120, (3, 9), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def logits(model):
    with torch.no_grad():
        return model(**inputs()).logits


@pytest.fixture(scope="module", params=["torch", pytest.param("torchao", marks=requires_torchao)])
def saved(request, tmp_path_factory):
    """(backend, folder written by save_quantized, logits of the model that was saved)."""
    fp32 = tiny_model()
    with torch.no_grad():  # a visible classifier, so that edits change the logits
        fp32.classifier.weight.normal_(0, 1.0)
    int8 = quantize_model(fp32, backend=request.param)
    folder = tmp_path_factory.mktemp(f"int8-{request.param}")
    save_quantized(int8, folder)
    return request.param, folder, logits(int8)


@pytest.fixture
def folder(saved, tmp_path):
    copy = tmp_path / "int8"
    shutil.copytree(saved[1], copy)
    return copy


# Edits -------------------------------------------------------------------------------------------------------------
def edit_tensors(folder, change):
    """Rewrite the weights file with `change(tensors)` applied, keeping its header as bertlite wrote it."""
    path = str(folder / WEIGHTS_NAME)
    with safe_open(path, framework="pt") as f:
        header = f.metadata()
        tensors = {key: f.get_tensor(key) for key in f.keys()}
    change(tensors)
    save_file(tensors, path, metadata=header)


def edit_json(folder, change, name=QUANTIZATION_CONFIG_NAME):
    path = folder / name
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def set_value(key, index, value):
    def change(tensors):
        tensors[key][index] = value
    return change


def _transpose(tensors):
    tensors[f"{QUERY}.weight_int8"] = tensors[f"{QUERY}.weight_int8"].t().contiguous()


def _other_activations(meta):
    meta["resolved"]["activations"] = "per_tensor" if meta["resolved"]["activations"] == "per_token" else "per_token"


def _other_backend(meta):
    meta["backend"] = OTHER_BACKEND[meta["backend"]]


def _truncate(folder):
    path = folder / WEIGHTS_NAME
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


# (id, edit of the folder, text the message must contain: the bad entry)
EDITS = [
    ("zero-scale", lambda f: edit_tensors(f, set_value(f"{QUERY}.weight_scale", 3, 0.0)), f"{QUERY}.weight_scale"),
    ("negative-scale", lambda f: edit_tensors(f, set_value(f"{FFN}.weight_scale", 0, -0.01)), f"{FFN}.weight_scale"),
    ("nonzero-zero-point", lambda f: edit_tensors(f, set_value(f"{QUERY}.weight_zero_point", 5, 3)),
     f"{QUERY}.weight_zero_point"),
    ("transposed-square-int8", lambda f: edit_tensors(f, _transpose), WEIGHTS_NAME),
    ("activations-changed", lambda f: edit_json(f, _other_activations), "resolved.activations"),
    ("nan-weights", lambda f: edit_tensors(f, set_value("classifier.weight", (0, 1), float("nan"))), "classifier.weight"),
    ("model-class-changed", lambda f: edit_json(f, lambda m: m.update(model_class="transformers.BertModel")),
     "model_class"),
    ("backend-changed", lambda f: edit_json(f, _other_backend), "backend"),
    ("missing-tensor", lambda f: edit_tensors(f, lambda t: t.pop(f"{FFN}.bias")), f"{FFN}.bias"),
    ("extra-tensor", lambda f: edit_tensors(f, lambda t: t.update({"bert.pooler.extra": torch.zeros(2)})),
     "bert.pooler.extra"),
    ("nan-scale", lambda f: edit_tensors(f, set_value(f"{FFN}.weight_scale", 7, float("nan"))), f"{FFN}.weight_scale"),
    ("wrong-shape-scale", lambda f: edit_tensors(f, lambda t: t.update({f"{FFN}.weight_scale": t[f"{FFN}.weight_scale"][:16]})),
     f"{FFN}.weight_scale"),
    ("float-where-int8", lambda f: edit_tensors(f, lambda t: t.update({f"{QUERY}.weight_int8": t[f"{QUERY}.weight_int8"].float()})),
     f"{QUERY}.weight_int8"),
    ("truncated-weights", _truncate, WEIGHTS_NAME),
    ("missing-json-key", lambda f: edit_json(f, lambda m: m.pop("linear_modules")), "linear_modules"),
    # Beyond the list: edits only the checksum or the binding of the settings can see.
    ("scale-doubled", lambda f: edit_tensors(f, lambda t: t[f"{QUERY}.weight_scale"].mul_(2)), WEIGHTS_NAME),
    ("layer-dropped-from-list", lambda f: edit_json(f, lambda m: m["linear_modules"].remove(FFN)), "linear_modules"),
    ("per-channel-changed", lambda f: edit_json(f, lambda m: m["settings"].update(per_channel=False)),
     "settings.per_channel"),
    ("checksum-changed", lambda f: edit_json(f, lambda m: m.update(weights_sha256="0" * 64)), WEIGHTS_NAME),
    ("untrusted-model-class", lambda f: edit_json(f, lambda m: m.update(model_class="os.system")), "model_class"),
    ("weights-file-elsewhere", lambda f: edit_json(f, lambda m: m.update(weights_file="../x.safetensors")), "weights_file"),
    ("config-activation-changed", lambda f: edit_json(f, lambda c: c.update(hidden_act="relu"), "config.json"),
     "'hidden_act' is 'relu'"),
    ("config-label-added", lambda f: edit_json(f, lambda c: c.update(id2label={"0": "a", "1": "b", "2": "c"}), "config.json"),
     "'num_labels' is 3"),
    ("config-json-corrupt", lambda f: (f / "config.json").write_text("{not json"), "config.json"),
    ("quantization-config-corrupt", lambda f: (f / QUANTIZATION_CONFIG_NAME).write_text('{"format": "bertlite-int8",'),
     QUANTIZATION_CONFIG_NAME),
]


@pytest.mark.parametrize("edit,entry", [pytest.param(e, n, id=i) for i, e, n in EDITS])
def test_edited_folder_is_refused_naming_the_entry(folder, edit, entry):
    edit(folder)
    with pytest.raises(Int8FolderError) as caught:
        load_quantized(folder)
    message = str(caught.value)
    assert entry in message, message
    assert "\n" not in message and str(folder) in message
    assert isinstance(caught.value, BertliteError)  # what the CLI prints as one line


def test_unedited_folder_loads_with_identical_logits(saved):
    _, folder, expected = saved
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a folder with a checksum loads without a word
        assert torch.equal(logits(load_quantized(folder)), expected)
    meta = json.loads((folder / QUANTIZATION_CONFIG_NAME).read_text())
    assert len(meta["weights_sha256"]) == 64
    with safe_open(str(folder / WEIGHTS_NAME), framework="pt") as f:
        assert json.loads(f.metadata()["bertlite_settings"])["resolved"] == meta["resolved"]


def test_quantize_folder_output_is_checked_through_load_compressed(tmp_path):
    """The folder `bertlite quantize` writes, loaded the way users load compressed models."""
    tiny_model().save_pretrained(tmp_path / "fp32")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No tokenizer")  # the tiny model has none: no fidelity check
        folder, _ = quantize_folder(str(tmp_path / "fp32"), str(tmp_path / "int8"))
    bertlite.load_compressed(folder)
    edit_tensors(tmp_path / "int8", set_value(f"{QUERY}.weight_scale", 0, 0.0))
    with pytest.raises(Int8FolderError, match=f"{QUERY}.weight_scale"):
        bertlite.load_compressed(folder)


def as_older_folder(folder):
    """What bertlite wrote before checksums: no settings in the weights file's header, no checksum in the JSON."""
    path = str(folder / WEIGHTS_NAME)
    with safe_open(path, framework="pt") as f:
        header = {k: v for k, v in f.metadata().items() if k != "bertlite_settings"}
        tensors = {key: f.get_tensor(key) for key in f.keys()}
    save_file(tensors, path, metadata=header)
    edit_json(folder, lambda m: m.pop("weights_sha256"))


def test_folder_without_checksum_loads_and_warns_once(saved, folder):
    as_older_folder(folder)
    with pytest.warns(UserWarning, match="no weights_sha256"):
        first = load_quantized(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_quantized(folder)
    assert torch.equal(logits(first), saved[2])


def _transpose_ffn(tensors):
    tensors[f"{FFN}.weight_int8"] = tensors[f"{FFN}.weight_int8"].t().contiguous()


# Without a checksum or recorded settings, what validation alone must still refuse.
OLDER_EDITS = [
    ("zero-scale", lambda f: edit_tensors(f, set_value(f"{QUERY}.weight_scale", 3, 0.0)), f"{QUERY}.weight_scale"),
    ("transposed-int8", lambda f: edit_tensors(f, _transpose_ffn), f"{FFN}.weight_int8"),
    ("bias-shape", lambda f: edit_tensors(f, lambda t: t.update({f"{FFN}.bias": t[f"{FFN}.bias"][:10]})), f"{FFN}.bias"),
    ("float64-scale", lambda f: edit_tensors(f, lambda t: t.update({f"{QUERY}.weight_scale": t[f"{QUERY}.weight_scale"].double()})),
     f"{QUERY}.weight_scale"),
    ("model-class-changed", lambda f: edit_json(f, lambda m: m.update(model_class="transformers.BertModel")),
     "'model_class' transformers.BertModel"),
    ("model-class-untrusted", lambda f: edit_json(f, lambda m: m.update(model_class="os.system")), "model_class"),
    ("model-class-not-a-model", lambda f: edit_json(f, lambda m: m.update(model_class="transformers.AutoConfig")),
     "model_class"),
    ("backend-onnxruntime", lambda f: edit_json(f, lambda m: m.update(backend="onnxruntime")), "backend"),
    ("backend-unknown", lambda f: edit_json(f, lambda m: m.update(backend="tensorrt")), "backend"),
    ("activations-unknown", lambda f: edit_json(f, lambda m: m["resolved"].update(activations="per_row")),
     "resolved.activations"),
    ("per-channel-not-bool", lambda f: edit_json(f, lambda m: m["resolved"].update(per_channel="yes")),
     "resolved.per_channel"),
    ("layer-norm-shape", lambda f: edit_tensors(f, lambda t: t.update({"bert.embeddings.LayerNorm.weight": torch.ones(31)})),
     "bert.embeddings.LayerNorm.weight"),
    ("unknown-layer-listed", lambda f: edit_json(f, lambda m: m["linear_modules"].append("bert.nothing")), "bert.nothing"),
]


@pytest.mark.parametrize("edit,entry", [pytest.param(e, n, id=i) for i, e, n in OLDER_EDITS])
def test_folder_without_checksum_is_still_validated(folder, edit, entry):
    as_older_folder(folder)
    edit(folder)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*no weights_sha256")
        with pytest.raises(Int8FolderError) as caught:
            load_quantized(folder)
    assert entry in str(caught.value) and "\n" not in str(caught.value), str(caught.value)


def test_label_names_may_be_edited(saved, folder):
    """Renaming labels in config.json changes nothing the model computes: the folder still loads."""
    edit_json(folder, lambda c: c.update(id2label={"0": "negative", "1": "positive"},
                                         label2id={"negative": 0, "positive": 1}), "config.json")
    model = load_quantized(folder)
    assert model.config.id2label[1] == "positive" and torch.equal(logits(model), saved[2])


def test_resave_restores_a_loadable_folder(saved, folder, tmp_path):
    """A rewrite of an existing folder leaves no temporary files, and the new checksum matches the new file."""
    save_quantized(load_quantized(folder), folder)
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in saved[1].iterdir())
    assert torch.equal(logits(load_quantized(folder)), saved[2])


def test_hub_round_trip_keeps_the_checksum_and_refuses_a_tampered_repo(tmp_path, monkeypatch):
    """Pushed and downloaded through the loopback Hub server: the same bytes, so the checksum holds; a repo whose
    weights were edited after quantization is refused once downloaded."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # the server speaks LFS; conftest sets offline mode
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    token = "hf_int8_test_token_0123456789"
    tiny_model().save_pretrained(tmp_path / "fp32")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No tokenizer")
        folder, _ = quantize_folder(str(tmp_path / "fp32"), str(tmp_path / "int8"))
    expected = logits(load_quantized(folder))
    with HubServer(tokens={token: {"name": "alice"}}) as hub:
        bertlite.push_compressed(folder, "alice/int8", endpoint=hub.url, token=token)
        model = bertlite.load_compressed("alice/int8", endpoint=hub.url, cache_dir=str(tmp_path / "cache"), token=token)
        assert torch.equal(logits(model), expected)
        edit_tensors(tmp_path / "int8", lambda t: t[f"{QUERY}.weight_scale"].mul_(2))
        bertlite.push_compressed(folder, "alice/int8", endpoint=hub.url, token=token)
        with pytest.raises(Int8FolderError, match=WEIGHTS_NAME):
            bertlite.load_compressed("alice/int8", endpoint=hub.url, cache_dir=str(tmp_path / "cache2"), token=token)


# ONNX Runtime -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def onnx_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("int8-onnx")
    save_quantized(quantize_model(tiny_model(), backend="onnxruntime"), folder)
    return folder


def _flip_last_byte(folder):
    path = folder / "model_int8.onnx"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))


@requires_onnxruntime
@pytest.mark.parametrize("edit,entry", [
    pytest.param(_flip_last_byte, "model_int8.onnx", id="onnx-file-changed"),
    pytest.param(lambda f: edit_json(f, lambda m: m.update(onnx_fused=not m["onnx_fused"])), "settings", id="settings-changed"),
    pytest.param(lambda f: edit_json(f, lambda m: m.update(output_name=7)), "output_name", id="bad-output-name"),
])
def test_edited_onnx_folder_is_refused(onnx_folder, tmp_path, edit, entry):
    folder = tmp_path / "onnx"
    shutil.copytree(onnx_folder, folder)
    load_quantized(folder)  # the unedited copy loads
    edit(folder)
    with pytest.raises(Int8FolderError, match=entry):
        load_quantized(folder)
