"""`bertlite quantize`: a saved (distilled, pruned) model -> a dynamic int8 model folder."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import BertliteError
from ..quantization.backends import BACKENDS

HELP = "Quantize a model to dynamic int8 (int8 weights, activations quantized at run time) and save it."


@dataclass
class QuantizeArguments:
    model: str = field(default=None, metadata={"help": "The fp32 model: a saved folder (or an alias / Hub id)."})
    output_dir: str = field(default=None, metadata={"help": "Where to write the int8 model (default: <model>-int8)."})
    backend: str = field(default="torch", metadata={
        "help": "torch: PyTorch's eager int8 kernels, no compiler needed (default); torchao: fast under torch.compile "
                "(load_quantized(dir, compile=True)); onnxruntime: one self-contained int8 .onnx file. torch and torchao "
                "folders also load compiled through PT2E + inductor: load_quantized(dir, compile='pt2e').",
        "choices": list(BACKENDS)})
    keep_fp32: list[str] = field(default_factory=list, metadata={
        "help": "Extra module name patterns (glob, or a parent module name) kept in fp32, added to the task heads "
                "(classifier, qa_outputs, cls.*, score) which always stay fp32 unless --quantize-head."})
    quantize_head: bool = field(default=False, metadata={"help": "Also quantize the task head (classifier)."})
    per_channel: bool = field(default=True, metadata={"help": "One weight scale per output row (default) rather than per matrix."})
    activations: str = field(default=None, metadata={
        "help": "How activations are quantized at run time: per_tensor (one scale per batch; the torch default, "
                "fastest eager) or per_token (one scale per token; more faithful; torch and torchao, torchao's default).",
        "choices": ["per_tensor", "per_token"]})
    reduce_range: bool | None = field(default=None, metadata={
        "help": "Use 7 bits to avoid 16-bit accumulator overflow in int8 kernels on x86 CPUs without VNNI. Default: "
                "auto (on only for such CPUs). torch per_tensor: activations; torch per_token and torchao: "
                "activations and weights; onnxruntime: weights."})
    quantize_embeddings: bool = field(default=False, metadata={"help": "Store the word-embedding matrix in int8 too (smaller file)."})
    keep_fp32_model: bool = field(default=False, metadata={"help": "Also save the fp32 model under <output-dir>/fp32."})
    export: str = field(default=None, metadata={
        "help": "onnx: also write <output_dir>/onnx/ with the model as one int8 ONNX file (model_int8.onnx, runnable "
                "with onnxruntime alone), its config and tokenizer, checked against the PyTorch int8 model with the "
                "thresholds below. Needs onnxruntime and onnx.", "choices": ["onnx"]})
    task: str = field(default=None, metadata={"help": "Task whose data the fp32/int8 check runs on (default: built-in sample sentences)."})
    check_split: str = field(default="test", metadata={"help": "Split of --task used for the check."})
    max_check_examples: int = field(default=None, metadata={"help": "Use at most this many examples for the check."})
    max_accuracy_drop: float = field(default=0.5, metadata={"help": "Warn when the task's main metric (accuracy, F1, Matthews, Pearson) drops by more percentage points."})
    min_label_agreement: float = field(default=0.99, metadata={"help": "Warn when fp32 and int8 agree on fewer labels (fraction)."})

    def __post_init__(self):
        if not self.model:
            raise BertliteError("--model is required: the folder of the model to quantize.")
        if self.backend not in BACKENDS:
            raise BertliteError(f"Unknown --backend {self.backend!r}: choose one of {', '.join(BACKENDS)}.")
        if self.max_check_examples is not None and self.max_check_examples < 1:
            raise BertliteError("--max-check-examples must be at least 1.")
        if not 0.0 <= self.min_label_agreement <= 1.0:
            raise BertliteError("--min-label-agreement is a fraction between 0 and 1.")

    def keep_fp32_patterns(self) -> list[str]:
        from ..quantization import DEFAULT_KEEP_FP32

        return ([] if self.quantize_head else list(DEFAULT_KEEP_FP32)) + list(self.keep_fp32)


DATACLASSES = (QuantizeArguments,)


def quantize(args: QuantizeArguments):
    """`quantize_folder` with the command's options (also compress's int8 stage). Returns (folder, report or None)."""
    from ..quantization import quantize_folder

    return quantize_folder(
        args.model, args.output_dir, task=args.task, check_split=args.check_split,
        max_check_examples=args.max_check_examples, keep_fp32_model=args.keep_fp32_model,
        max_accuracy_drop=args.max_accuracy_drop, min_label_agreement=args.min_label_agreement,
        backend=args.backend, keep_fp32=args.keep_fp32_patterns(), per_channel=args.per_channel,
        reduce_range=args.reduce_range, activations=args.activations, quantize_embeddings=args.quantize_embeddings,
        export=args.export,
    )


def run(args: QuantizeArguments) -> int:
    from ..evaluation import folder_size_mb

    output_dir, report = quantize(args)
    print(f"int8 model ({args.backend}) written to {output_dir} ({folder_size_mb(output_dir):.1f} MB of weights)")
    if report is not None:
        print(report.summary())
    print(f"Load it with: bertlite.load_compressed({output_dir!r})")
    if args.export:
        import os

        from ..quantization.folder import ONNX_EXPORT_DIR
        from ..record import CompressionConfig

        onnx_dir = os.path.join(output_dir, ONNX_EXPORT_DIR)
        check = CompressionConfig.from_pretrained(output_dir).metrics["quantization"]["onnx_export"]
        agreement = check.get("label_agreement")
        print(f"ONNX int8 export written to {onnx_dir} (model_int8.onnx runs with onnxruntime alone); against the "
              f"PyTorch int8 model: max |logit diff| {check.get('max_abs_logit_diff', float('nan')):.4f}"
              + (f", label agreement {100 * agreement:.2f}%" if agreement is not None else ""))
    return 0
