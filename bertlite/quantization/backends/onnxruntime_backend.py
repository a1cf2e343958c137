"""ONNX Runtime backend: one self-contained int8 `.onnx` file for deployment.

Pipeline (the fused graph is what `scripts/bench_quantization.py` measures; see docs/quantization.md):
1. export with eager attention and the TorchScript exporter into a single file: ORT's BERT fusion recognises the
   eager attention pattern, and a single file avoids the side-car `.onnx.data` that trips ORT's tools;
2. fuse with `onnxruntime.transformers.optimize_model(model_type="bert")` (Attention, EmbedLayerNormalization,
   SkipLayerNormalization, BiasGelu) and check the fused graph against the unfused one; the fused graph is used
   only when they agree, since fusion must never change what the model computes (e.g. pruned, uneven layers);
3. `onnxruntime.quantization.quantize_dynamic` to int8 weights with activations quantized at run time.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import os
import re
import tempfile
import warnings
from contextlib import contextmanager

import numpy as np
import torch

from ...errors import BertliteError
from ..weights import INT8_RESTRICTED_RANGE
from .base import Int8Backend, Int8Settings

ONNX_FILE = "model_int8.onnx"
OPSET = 17
FUSION_TOLERANCE = 1e-3  # max |fused - unfused| on the same fp32 inputs (float reassociation stays ~1e-6)
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
ORT_INT7_RANGE = (-64, 64)  # ORT's reduced symmetric int8 weight range


class OnnxRuntimeBackend(Int8Backend):
    name = "onnxruntime"
    summary = "ONNX Runtime int8 graph (fused BERT ops), a single deployable .onnx file"
    is_graph_backend = True
    # reduce_range: *weights* use 7 bits (ORT's definition; activations stay 8-bit uint8).
    install_hint = "pip install 'onnxruntime>=1.17' 'onnx>=1.15'"

    def check_available(self) -> None:
        missing = [m for m in ("onnxruntime", "onnx") if importlib.util.find_spec(m) is None]
        if missing:
            raise BertliteError(f"The 'onnxruntime' backend needs {' and '.join(missing)}: {self.install_hint}")

    def weight_qrange(self, settings: Int8Settings) -> tuple[int, int]:
        return ORT_INT7_RANGE if settings.reduce_range else INT8_RESTRICTED_RANGE

    def quantize_graph(self, model: torch.nn.Module, config, settings: Int8Settings, keep_names: list[str]) -> "OnnxInt8Model":
        with tempfile.TemporaryDirectory(prefix="bertlite-onnx-") as tmp:
            fp32_path = export_onnx(model, os.path.join(tmp, "model_fp32.onnx"))
            graph_path, fused = fuse_bert_graph(fp32_path, os.path.join(tmp, "model_fused.onnx"), model.config)
            int8_path = os.path.join(tmp, ONNX_FILE)
            _quantize_onnx(graph_path, int8_path, config, settings, keep_names)
            with open(int8_path, "rb") as f:
                onnx_bytes = f.read()
        return OnnxInt8Model(onnx_bytes, model.config, output_name=_primary_output_name(model), fused=fused)


# Export ---------------------------------------------------------------------------------------------------------
class _PrimaryOutput(torch.nn.Module):
    """The model with a positional signature and one tensor out (logits, or the last hidden state of an encoder)."""

    def __init__(self, model, output_name: str, input_names: tuple[str, ...]):
        super().__init__()
        self.model, self.output_name, self.input_names = model, output_name, input_names

    def forward(self, *inputs):
        return getattr(self.model(**dict(zip(self.input_names, inputs))), self.output_name)


def _primary_output_name(model) -> str:
    return "logits" if _has_task_head(model) else "last_hidden_state"


def _has_task_head(model) -> bool:
    return type(model).__name__.endswith(("ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering",
                                          "ForMaskedLM", "ForMultipleChoice", "ForNextSentencePrediction"))


def _input_names(model) -> tuple[str, ...]:
    uses_token_types = getattr(model.config, "type_vocab_size", 0) > 0
    return INPUT_NAMES if uses_token_types else INPUT_NAMES[:2]


@contextmanager
def _quiet_exporter():
    # The TorchScript exporter is deprecated in favour of the dynamo one, whose external-data output the ORT
    # tools do not handle; these are the warnings that choice brings, and only those are silenced.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="You are using the legacy TorchScript-based ONNX export",
                                category=DeprecationWarning)
        # BERT gathers its buffered token-type ids with position ids, which are never negative.
        warnings.filterwarnings("ignore", message="Exporting aten::index operator of advanced indexing", category=UserWarning)
        warnings.filterwarnings("ignore", message="The feature will be removed", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


def export_onnx(model: torch.nn.Module, path: str, seq_len: int = 16) -> str:
    """fp32 ONNX export with dynamic batch and sequence axes, eager attention (the pattern ORT fuses)."""
    model = copy.deepcopy(model).eval()
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    names = _input_names(model)
    output_name = _primary_output_name(model)
    generator = torch.Generator().manual_seed(0)
    vocab = getattr(model.config, "vocab_size", 1000)
    ids = torch.randint(min(5, vocab - 1), vocab, (2, seq_len), generator=generator)
    example = (ids, torch.ones_like(ids), torch.zeros_like(ids))[: len(names)]
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes[output_name] = {0: "batch"} if output_name == "logits" else {0: "batch", 1: "sequence"}
    try:
        with _quiet_exporter(), torch.no_grad():
            torch.onnx.export(_PrimaryOutput(model, output_name, names), example, path, input_names=list(names),
                              output_names=[output_name], dynamic_axes=axes, opset_version=OPSET, dynamo=False,
                              do_constant_folding=True)
    except Exception as err:  # the exporter raises many types; the user needs to know which model failed
        raise BertliteError(f"ONNX export of {type(model).__name__} failed: {err}") from err
    return path


@contextmanager
def _quiet_ort_logs():
    # ORT's optimizer warns about tiny vocabularies (test models) and its quantizer advises a pre-processing pass
    # whose shape inference cannot handle the fused contrib ops; neither applies here. The quantizer also logs
    # through the root logger, which installs a root handler as a side effect: that handler is removed again.
    class _Drop(logging.Filter):
        def filter(self, record):
            text = record.getMessage()
            return not (text.startswith("Please consider to run pre-processing") or "word_embedding_table" in text)

    flt = _Drop()
    root = logging.getLogger()
    root_handlers = list(root.handlers)
    loggers = [root, logging.getLogger("fusion_embedlayer")]
    for lg in loggers:
        lg.addFilter(flt)
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeFilter(flt)
        root.handlers = root_handlers


def fuse_bert_graph(fp32_path: str, fused_path: str, config=None) -> tuple[str, bool]:
    """The fused graph when fusion preserves the outputs, else the unfused one. Returns (path, fused)."""
    from onnxruntime.transformers.optimizer import optimize_model

    # Transformers v5 reshapes to (-1 heads, head_size), so ORT cannot read the head count from the graph and
    # needs it given. A config without one integer head count (uneven pruned layers) gets 0 = "try to detect".
    num_heads = getattr(config, "num_attention_heads", 0)
    hidden_size = getattr(config, "hidden_size", 0)
    if not isinstance(num_heads, int) or not isinstance(hidden_size, int):
        num_heads = hidden_size = 0
    try:
        with _quiet_ort_logs():
            optimized = optimize_model(fp32_path, model_type="bert", num_heads=num_heads, hidden_size=hidden_size)
            optimized.save_model_to_file(fused_path)
    except Exception as err:  # fusion is an optimisation: fall back to the plain graph
        warnings.warn(f"ONNX Runtime BERT fusion failed ({err}); using the unfused graph (slower).", stacklevel=3)
        return fp32_path, False
    if not _same_outputs(fp32_path, fused_path):
        warnings.warn("ONNX Runtime BERT fusion changed the model's outputs (uneven layers?); using the unfused "
                      "graph, which is slower but exact.", stacklevel=3)
        return fp32_path, False
    return fused_path, True


def _session(model_path_or_bytes, threads: int | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE":
        # The same choice as OpenMP's passive waiting (bertlite's CLI sets it): ORT's worker threads spin
        # between ops by default, which on a shared, small machine steals the cores the other threads need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model_path_or_bytes, options, providers=["CPUExecutionProvider"])


def _same_outputs(path_a: str, path_b: str) -> bool:
    a, b = _session(path_a), _session(path_b)
    rng = np.random.default_rng(0)
    feeds = {}
    for inp in a.get_inputs():
        if inp.name == "input_ids":
            feeds[inp.name] = rng.integers(5, 100, size=(3, 11), dtype=np.int64)
        elif inp.name == "attention_mask":
            mask = np.ones((3, 11), dtype=np.int64)
            mask[1, 7:] = 0  # padding must be handled identically too
            feeds[inp.name] = mask
        else:
            feeds[inp.name] = np.zeros((3, 11), dtype=np.int64)
    out_a, out_b = a.run(None, feeds)[0], b.run(None, feeds)[0]
    return out_a.shape == out_b.shape and float(np.abs(out_a - out_b).max()) <= FUSION_TOLERANCE


# Quantization ---------------------------------------------------------------------------------------------------
def _module_of_node(node_name: str) -> str | None:
    """'/model/bert/encoder/layer.0/intermediate/dense/MatMul' -> 'bert.encoder.layer.0.intermediate.dense'
    (the exporter names nodes by module path; `model` is the _PrimaryOutput wrapper's attribute)."""
    match = re.fullmatch(r"/model/(.+)/(MatMul|Gemm)(_\d+)?", node_name)
    return match.group(1).replace("/", ".") if match else None


def _excluded_nodes(graph, keep_names: list[str]) -> list[str]:
    """ONNX node names for the Linear modules kept in fp32. A fused Attention node holds one layer's query, key
    and value; it stays fp32 when any of the three is kept (its output feeds that layer's attention.output.dense)."""
    keep = set(keep_names)
    excluded = [n.name for n in graph.node if _module_of_node(n.name) in keep]
    consumers = {}
    for node in graph.node:
        for inp in node.input:
            consumers.setdefault(inp, []).append(node)
    for node in graph.node:
        if node.op_type != "Attention":
            continue
        for consumer in consumers.get(node.output[0], []):
            module = _module_of_node(consumer.name) or ""
            if module.endswith(".output.dense"):
                prefix = module[: -len(".output.dense")] + ".self."
                if any(prefix + part in keep for part in ("query", "key", "value")):
                    excluded.append(node.name)
    return excluded


def _quantize_onnx(src: str, dst: str, config, settings: Int8Settings, keep_names: list[str]) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    op_types = ["MatMul", "Attention"] + (["Gather", "EmbedLayerNormalization"] if config.quantize_embeddings else [])
    excluded = _excluded_nodes(onnx.load(src, load_external_data=False).graph, keep_names)
    with _quiet_ort_logs():
        quantize_dynamic(src, dst, op_types_to_quantize=op_types, per_channel=settings.per_channel,
                         reduce_range=settings.reduce_range, weight_type=QuantType.QInt8, nodes_to_exclude=excluded,
                         extra_options={"MatMulConstBOnly": True,  # activation x activation products stay fp32
                                        "DefaultTensorType": onnx.TensorProto.FLOAT})


# Runtime wrapper ------------------------------------------------------------------------------------------------
class OnnxInt8Model(torch.nn.Module):
    """An int8 ONNX Runtime session behind the call signature of a Transformers model (`model(**batch).logits`),
    so evaluation, latency measurement and the fp32 comparison treat it like any other model."""

    def __init__(self, onnx_bytes: bytes, config, output_name: str = "logits", fused: bool = True,
                 threads: int | None = None):
        super().__init__()
        self.onnx_bytes = onnx_bytes
        self.config = config
        self.output_name = output_name
        self.fused = fused
        self.session = _session(onnx_bytes, threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        # Callers find the device with next(model.parameters()); an empty parameter answers "cpu".
        self._device_anchor = torch.nn.Parameter(torch.zeros(0), requires_grad=False)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, **_ignored):
        from transformers.modeling_outputs import ModelOutput

        values = {"input_ids": input_ids,
                  "attention_mask": torch.ones_like(input_ids) if attention_mask is None else attention_mask,
                  "token_type_ids": torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids}
        feeds = {name: values[name].detach().cpu().to(torch.int64).numpy() for name in self.input_names}
        output = torch.from_numpy(self.session.run(None, feeds)[0])
        return ModelOutput({self.output_name: output})

    def save(self, folder: str) -> str:
        path = os.path.join(folder, ONNX_FILE)
        with open(path, "wb") as f:
            f.write(self.onnx_bytes)
        return path

    @classmethod
    def load(cls, folder: str, config, output_name: str, fused: bool, threads: int | None = None) -> "OnnxInt8Model":
        path = os.path.join(folder, ONNX_FILE)
        if not os.path.isfile(path):
            raise BertliteError(f"{folder!r} is an ONNX Runtime int8 folder but {ONNX_FILE} is missing.")
        with open(path, "rb") as f:
            return cls(f.read(), config, output_name, fused, threads)
