"""What the model card says about each compression method: a title, tags, citations and limitations.

Keyed by the `method` of a compression_config.json step. A new bertlite command registers its method here with
`register_method(...)` so that its steps are cited and explained; an unknown method is still listed with its
parameters, only without citation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class Citation:
    key: str
    text: str  # one line for the reference list
    bibtex: str


CITATIONS = {c.key: c for c in [
    Citation("hinton2015", "Hinton, Vinyals & Dean (2015). Distilling the Knowledge in a Neural Network. arXiv:1503.02531.",
             "@article{hinton2015distilling,\n  title={Distilling the Knowledge in a Neural Network},\n"
             "  author={Hinton, Geoffrey and Vinyals, Oriol and Dean, Jeff},\n  journal={arXiv preprint arXiv:1503.02531},\n"
             "  year={2015}\n}"),
    Citation("sanh2019", "Sanh, Debut, Chaumond & Wolf (2019). DistilBERT, a distilled version of BERT: smaller, faster, "
             "cheaper and lighter. arXiv:1910.01108.",
             "@article{sanh2019distilbert,\n  title={DistilBERT, a distilled version of BERT: smaller, faster, cheaper and lighter},\n"
             "  author={Sanh, Victor and Debut, Lysandre and Chaumond, Julien and Wolf, Thomas},\n"
             "  journal={arXiv preprint arXiv:1910.01108},\n  year={2019}\n}"),
    Citation("jiao2020", "Jiao et al. (2020). TinyBERT: Distilling BERT for Natural Language Understanding. Findings of "
             "EMNLP 2020. arXiv:1909.10351.",
             "@inproceedings{jiao2020tinybert,\n  title={TinyBERT: Distilling BERT for Natural Language Understanding},\n"
             "  author={Jiao, Xiaoqi and Yin, Yichun and Shang, Lifeng and Jiang, Xin and Chen, Xiao and Li, Linlin and "
             "Wang, Fang and Liu, Qun},\n  booktitle={Findings of the Association for Computational Linguistics: EMNLP 2020},\n"
             "  year={2020}\n}"),
    Citation("wang2021", "Wang, Bao, Huang, Dong & Wei (2021). MiniLMv2: Multi-Head Self-Attention Relation Distillation "
             "for Compressing Pretrained Transformers. Findings of ACL 2021. arXiv:2012.15828.",
             "@inproceedings{wang2021minilmv2,\n  title={MiniLMv2: Multi-Head Self-Attention Relation Distillation for "
             "Compressing Pretrained Transformers},\n  author={Wang, Wenhui and Bao, Hangbo and Huang, Shaohan and Dong, Li "
             "and Wei, Furu},\n  booktitle={Findings of the Association for Computational Linguistics: ACL-IJCNLP 2021},\n"
             "  year={2021}\n}"),
    Citation("michel2019", "Michel, Levy & Neubig (2019). Are Sixteen Heads Really Better than One? NeurIPS 2019. "
             "arXiv:1905.10650.",
             "@inproceedings{michel2019sixteen,\n  title={Are Sixteen Heads Really Better than One?},\n"
             "  author={Michel, Paul and Levy, Omer and Neubig, Graham},\n"
             "  booktitle={Advances in Neural Information Processing Systems},\n  year={2019}\n}"),
    Citation("han2015", "Han, Pool, Tran & Dally (2015). Learning both Weights and Connections for Efficient Neural "
             "Networks. NeurIPS 2015. arXiv:1506.02626.",
             "@inproceedings{han2015learning,\n  title={Learning both Weights and Connections for Efficient Neural Networks},\n"
             "  author={Han, Song and Pool, Jeff and Tran, John and Dally, William},\n"
             "  booktitle={Advances in Neural Information Processing Systems},\n  year={2015}\n}"),
    Citation("frankle2019", "Frankle & Carbin (2019). The Lottery Ticket Hypothesis: Finding Sparse, Trainable Neural "
             "Networks. ICLR 2019. arXiv:1803.03635.",
             "@inproceedings{frankle2019lottery,\n  title={The Lottery Ticket Hypothesis: Finding Sparse, Trainable Neural Networks},\n"
             "  author={Frankle, Jonathan and Carbin, Michael},\n"
             "  booktitle={International Conference on Learning Representations},\n  year={2019}\n}"),
    Citation("lecun1990", "LeCun, Denker & Solla (1990). Optimal Brain Damage. Advances in Neural Information "
             "Processing Systems 2.",
             "@inproceedings{lecun1990optimal,\n  title={Optimal Brain Damage},\n"
             "  author={LeCun, Yann and Denker, John S. and Solla, Sara A.},\n"
             "  booktitle={Advances in Neural Information Processing Systems 2},\n  pages={598--605},\n  year={1990}\n}"),
    Citation("tanaka2020", "Tanaka, Kunin, Yamins & Ganguli (2020). Pruning neural networks without any data by "
             "iteratively conserving synaptic flow. NeurIPS 2020. arXiv:2006.05467.",
             "@inproceedings{tanaka2020pruning,\n  title={Pruning neural networks without any data by iteratively conserving synaptic flow},\n"
             "  author={Tanaka, Hidenori and Kunin, Daniel and Yamins, Daniel L. K. and Ganguli, Surya},\n"
             "  booktitle={Advances in Neural Information Processing Systems},\n  year={2020}\n}"),
    Citation("jacob2018", "Jacob et al. (2018). Quantization and Training of Neural Networks for Efficient "
             "Integer-Arithmetic-Only Inference. CVPR 2018. arXiv:1712.05877.",
             "@inproceedings{jacob2018quantization,\n  title={Quantization and Training of Neural Networks for Efficient "
             "Integer-Arithmetic-Only Inference},\n  author={Jacob, Benoit and Kligys, Skirmantas and Chen, Bo and Zhu, "
             "Menglong and Tang, Matthew and Howard, Andrew and Adam, Hartwig and Kalenichenko, Dmitry},\n"
             "  booktitle={Proceedings of the IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},\n"
             "  year={2018}\n}"),
    Citation("pytorch_quantization", "PyTorch quantization documentation (dynamic int8 quantization): "
             "https://pytorch.org/docs/stable/quantization.html",
             "@misc{pytorch_quantization,\n  title={Quantization},\n  author={{PyTorch Contributors}},\n"
             "  howpublished={\\url{https://pytorch.org/docs/stable/quantization.html}}\n}"),
]}


@dataclass(frozen=True)
class MethodNote:
    title: str
    tags: tuple[str, ...] = ()
    citations: Callable[[dict], list[str]] = field(default=lambda params: [])
    limitation: str | None = None


def _positive(params: dict, key: str) -> bool:
    value = params.get(key)
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _distillation_citations(params: dict) -> list[str]:
    keys = ["hinton2015", "sanh2019"]
    # Matching hidden states, attentions or embeddings is TinyBERT's intermediate-layer distillation.
    if any(_positive(params, k) for k in ("hidden_weight", "attention_weight", "embedding_weight")):
        keys.append("jiao2020")
    if _positive(params, "relation_weight"):  # query/key/value relations: MiniLMv2
        keys.append("wang2021")
    return keys


def _weight_pruning_citations(params: dict) -> list[str]:
    criterion = " ".join(str(params.get(k, "")) for k in ("criterion", "method", "score", "scoring", "schedule")).lower()
    keys = []
    if "lottery" in criterion or "lth" in criterion or "rewind" in criterion or params.get("rewind") is not None:
        keys.append("frankle2019")
    if "obd" in criterion or "brain" in criterion or "saliency" in criterion or "hessian" in criterion:
        keys.append("lecun1990")
    if "synflow" in criterion:
        keys.append("tanaka2020")
    if "magnitude" in criterion and not keys:
        keys.append("han2015")
    return keys


METHODS: dict[str, MethodNote] = {
    "distillation": MethodNote(
        "Knowledge distillation", ("distillation",), _distillation_citations,
        "The student learned to imitate the teacher on the training data of one task; on other domains it can be "
        "further from the teacher than the results table shows."),
    "general_distillation": MethodNote(
        "General distillation (intermediate layers, unlabeled text)", ("distillation",),
        lambda params: ["jiao2020"] + (["wang2021"] if _positive(params, "relation_weight") else []),
        "A general student is an encoder without a task head: task-distil or fine-tune it before use "
        "(`bertlite distill --student PATH`)."),
    "structured_pruning": MethodNote(
        "Structured pruning of attention heads and FFN neurons", ("pruning", "structured-pruning"),
        lambda params: ["michel2019"],
        "Pruned heads and neurons are removed for good: layers have different widths, so plain Transformers needs "
        "the modeling code shipped in this repository (`trust_remote_code=True`) or bertlite installed."),
    "weight_pruning": MethodNote(
        "Unstructured weight pruning", ("pruning", "sparse"), _weight_pruning_citations,
        "Pruned weights are stored as zeros in dense tensors: standard PyTorch kernels do not run faster and the "
        "file is not smaller unless a sparse format or runtime is used."),
    "quantization": MethodNote(
        "Dynamic int8 quantization", ("quantization", "int8"),
        lambda params: ["jacob2018", "pytorch_quantization"],
        "int8 kernels run on CPU only (PyTorch fbgemm/qnnpack backends); results can differ slightly between CPU "
        "architectures, and rebuilding the quantized modules needs bertlite or this repository's code."),
}


def register_method(method: str, note: MethodNote) -> None:
    """Describe a new compression method (the `method` of its compression_config.json steps) for model cards."""
    METHODS[method] = note


def note_for(method: str) -> MethodNote:
    return METHODS.get(method, MethodNote(method.replace("_", " ").capitalize()))


def citations_for(steps) -> list[Citation]:
    """Citations of the methods a model went through, in the order of first use, without duplicates."""
    keys: list[str] = []
    for step in steps:
        for key in note_for(step.method).citations(step.params or {}):
            if key not in keys:
                keys.append(key)
    return [CITATIONS[k] for k in keys if k in CITATIONS]
