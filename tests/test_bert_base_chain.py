"""BERT-base scale without the Hub (issue 17, section 3).

- `teacher_dtype`: the frozen teacher may run in bf16 while the student trains in fp32 (fast tests, tiny models).
- The whole chain on a bert-base-shaped teacher (12 x 768, 12 heads, FFN 3072, the uncased 30,522 vocabulary, random
  weights; scripts/make_bert_base_shape.py): distill into DistilBERT-6 and TinyBERT-4 (general, then task
  distillation), prune heads/FFN, quantize, push to the loopback Hub server, load back, same logits (slow).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
from conftest import tiny_dataset, tiny_model  # noqa: E402
from helpers_trainer import make_trainer, pad_collate  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from make_bert_base_shape import STUDENTS, bert_shape_config, make_bert_shape_folder  # noqa: E402

TOKEN = "hf_scale_test_token_0123456789abcdef"
TEXTS = ["a gripping, beautifully acted film", "dull and far too long", "not bad at all"]


# ----- teacher_dtype -------------------------------------------------------------------------------------------------
def _first_training_loss(tmp_path, **config):
    """The distillation loss of the first batch, computed by DistillationTrainer.compute_loss in training mode."""
    trainer = make_trainer(tmp_path, teacher=tiny_model(seed=0), hard_label_weight=0.0, **config)
    batch = pad_collate([tiny_dataset()[i] for i in range(8)])
    trainer.model.train()
    loss = trainer.compute_loss(trainer.model, batch)
    loss.backward()
    return trainer, loss


def test_bf16_teacher_gives_a_finite_loss_close_to_the_fp32_teacher(tmp_path):
    fp32_trainer, fp32_loss = _first_training_loss(tmp_path / "fp32")
    bf16_trainer, bf16_loss = _first_training_loss(tmp_path / "bf16", teacher_dtype="bf16")
    assert bf16_trainer.args.teacher_torch_dtype is torch.bfloat16 and fp32_trainer.args.teacher_torch_dtype is None
    assert {p.dtype for p in bf16_trainer.teacher.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in bf16_trainer.model.parameters()} == {torch.float32}
    assert {p.dtype for p in bf16_trainer.projections.parameters()} == {torch.float32}
    assert bf16_loss.dtype == torch.float32 and torch.isfinite(bf16_loss)
    # Same student (same seed), same batch: only the teacher's rounding differs (bf16 keeps ~3 significant digits).
    assert bf16_loss.item() == pytest.approx(fp32_loss.item(), rel=0.05)
    assert bf16_loss.item() != fp32_loss.item()  # the teacher really ran in bf16
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in bf16_trainer.model.parameters()
               if p.requires_grad and p.grad is not None)


def test_bf16_teacher_trains_a_student(tmp_path):
    trainer = make_trainer(tmp_path, teacher=tiny_model(seed=0), teacher_dtype="bf16", max_steps=4)
    before = copy.deepcopy(trainer.model.state_dict())
    result = trainer.train()
    assert torch.isfinite(torch.tensor(result.training_loss))
    changed = [k for k, v in trainer.model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed and all(v.dtype == torch.float32 for v in trainer.model.state_dict().values() if v.is_floating_point())


def test_teacher_dtype_is_validated(tmp_path):
    from bertlite import BertliteError
    from bertlite.distillation.config import DistillationConfig

    with pytest.raises(BertliteError, match="teacher_dtype must be 'bf16' or 'fp16'"):
        DistillationConfig(output_dir=str(tmp_path), teacher_dtype="int8", use_cpu=True)
    with pytest.raises(BertliteError, match="needs a GPU"):
        DistillationConfig(output_dir=str(tmp_path), teacher_dtype="fp16", use_cpu=True)
    assert DistillationConfig(output_dir=str(tmp_path), use_cpu=True).teacher_torch_dtype is None


def test_distill_command_takes_teacher_dtype_and_records_it(tmp_path, capsys):
    from bertlite.cli import main

    assert main(["distill", "--teacher_dtype", "fp16", "--use_cpu", "true", "--output_dir", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert "needs a GPU" in err and "Traceback" not in err


# ----- the bert-base-shaped folder -----------------------------------------------------------------------------------
def test_bert_base_shape_is_bert_base_uncased():
    from bertlite.loading import load_tokenizer

    config = bert_shape_config("bert-base")
    shape = (config.num_hidden_layers, config.hidden_size, config.num_attention_heads, config.intermediate_size,
             config.vocab_size, config.max_position_embeddings, config.type_vocab_size)
    assert shape == (12, 768, 12, 3072, 30522, 512, 2)
    assert load_tokenizer("minilm").vocab_size == config.vocab_size
    large = bert_shape_config("bert-large")
    assert (large.num_hidden_layers, large.hidden_size, large.num_attention_heads) == (24, 1024, 16)


# ----- the whole chain (slow) ----------------------------------------------------------------------------------------
def _env(hub_url: str, home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_ENDPOINT=hub_url, HF_HUB_DISABLE_XET="1", HF_HOME=str(home), HF_TOKEN=TOKEN, PYTHONPATH=str(ROOT),
               OMP_WAIT_POLICY="PASSIVE", HF_HUB_DISABLE_PROGRESS_BARS="1", TOKENIZERS_PARALLELISM="false",
               OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    return env


def _bertlite(env: dict, *args: str) -> str:
    """Run the real CLI in a fresh process, as a user's shell would; returns its stdout."""
    run = subprocess.run([sys.executable, "-m", "bertlite", *args], capture_output=True, text=True, env=env,
                         timeout=1200, cwd=ROOT)
    assert run.returncode == 0, f"bertlite {' '.join(args)} failed:\n{run.stdout[-2000:]}\n{run.stderr[-4000:]}"
    assert "Traceback" not in run.stderr
    return run.stdout


def _local_logits(folder: Path) -> torch.Tensor:
    from bertlite import load_compressed
    from bertlite.loading import load_tokenizer

    model = load_compressed(str(folder)).eval()
    batch = load_tokenizer(str(folder))(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**batch).logits


def _hub_logits(env: dict, repo_id: str) -> torch.Tensor:
    script = ("import json, torch, bertlite\n"
              "from bertlite.loading import load_tokenizer\n"
              f"model = bertlite.load_compressed({repo_id!r}).eval()\n"
              f"batch = load_tokenizer({repo_id!r})({TEXTS!r}, padding=True, return_tensors='pt')\n"
              "with torch.no_grad():\n"
              "    print(json.dumps(model(**batch).logits.tolist()))\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    return torch.tensor(json.loads(run.stdout.strip().splitlines()[-1]))


QUICK = ["--max_train_examples", "16", "--max_eval_examples", "8", "--max_length", "32", "--max_steps", "2",
         "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "8", "--no_measure_latency",
         "--disable_tqdm", "true", "--report_to", "none", "--save_strategy", "no"]


@pytest.mark.slow
def test_bert_base_shaped_chain_distill_prune_quantize_push_load(tmp_path):
    from hub_server import HubServer

    teacher = make_bert_shape_folder(tmp_path / "bert-base-shaped")
    # bert-base-shaped files are hundreds of MB: lift the test server's default request/storage limits.
    with HubServer(root=str(tmp_path / "hub"), tokens={TOKEN: {"name": "alice"}}, max_body_bytes=2**30,
                   max_total_bytes=2**31) as hub:
        env = _env(hub.url, tmp_path / "hf_home")

        # DistilBERT-6: every other layer of the teacher, full width.
        distil = tmp_path / "distilbert-6"
        _bertlite(env, "distill", "--teacher", str(teacher), "--student_layers", str(STUDENTS["distilbert-6"]["num_layers"]),
                  "--output_dir", str(distil), *QUICK)
        record = json.loads((distil / "compression_config.json").read_text())
        assert record["steps"][-1]["params"]["student_init"]["from_teacher_layers"] == [0, 2, 4, 6, 8, 10]
        config = json.loads((distil / "config.json").read_text())
        assert (config["num_hidden_layers"], config["hidden_size"], config["vocab_size"]) == (6, 768, 30522)

        # TinyBERT-4: general distillation (intermediate losses, learned projections) then task distillation.
        tiny = STUDENTS["tinybert-4"]
        general, task = tmp_path / "tinybert-4-general", tmp_path / "tinybert-4"
        _bertlite(env, "distill", "--general", "--teacher", str(teacher), "--student_layers", str(tiny["num_layers"]),
                  "--student_hidden_size", str(tiny["hidden_size"]), "--student_intermediate_size",
                  str(tiny["intermediate_size"]), "--student_heads", str(tiny["num_attention_heads"]),
                  "--corpus", "rotten_tomatoes", "--corpus_max_texts", "16", "--max_steps", "2",
                  "--per_device_train_batch_size", "4", "--max_length", "32", "--attention_weight", "1",
                  "--output_dir", str(general), "--disable_tqdm", "true", "--report_to", "none")
        gconfig = json.loads((general / "config.json").read_text())
        assert (gconfig["num_hidden_layers"], gconfig["hidden_size"], gconfig["intermediate_size"],
                gconfig["num_attention_heads"]) == (4, 312, 1200, 12)
        _bertlite(env, "distill", "--teacher", str(teacher), "--student", str(general), "--student_head", "fresh",
                  "--output_dir", str(task), *QUICK)
        step = json.loads((task / "compression_config.json").read_text())["steps"][-1]
        assert step["method"] == "distillation" and step["params"]["student_init"]["from"] == str(general)

        # Prune DistilBERT-6's heads and FFN neurons, then quantize the pruned model to int8.
        pruned, int8 = tmp_path / "distilbert-6-pruned", tmp_path / "distilbert-6-pruned-int8"
        _bertlite(env, "prune", "--model", str(distil), "--heads", "0.25", "--ffn", "0.25", "--criterion", "magnitude",
                  "--max_eval_examples", "8", "--max_length", "32", "--output_dir", str(pruned))
        _bertlite(env, "quantize", "--model", str(pruned), "--output-dir", str(int8), "--max-check-examples", "8",
                  "--max-accuracy-drop", "1.0", "--min-label-agreement", "0.0")
        methods = [s["method"] for s in json.loads((int8 / "compression_config.json").read_text())["steps"]]
        assert methods[0] == "distillation" and methods[-1] == "quantization" and len(methods) == 3

        # Push both finished students to the loopback Hub, load them back in a fresh process: the same logits.
        for folder, repo_id in ((int8, "alice/bert-base-shaped-distil6-pruned-int8"), (task, "alice/bert-base-shaped-tiny4")):
            assert repo_id in _bertlite(env, "push", "--folder", str(folder), "--repo-id", repo_id, "--license", "apache-2.0")
            local = _local_logits(folder)
            assert local.shape == (len(TEXTS), 2) and torch.isfinite(local).all()
            assert torch.allclose(_hub_logits(env, repo_id), local, atol=1e-6), repo_id


def test_bf16_mixed_precision_runs_the_teacher_in_bf16_too(tmp_path):
    """--bf16: accelerate autocasts the student's forward; the teacher's forward must run in the same mixed precision
    (it did not: its matmuls ran in fp32, the slowest part of a bf16 step), while the losses still compare in fp32."""
    trainer = make_trainer(tmp_path, teacher=tiny_model(seed=0), bf16=True, hard_label_weight=0.0, max_steps=2)
    seen = {}

    def record(name):
        def hook(module, args, output):
            seen.setdefault(name, set()).add(output.dtype)  # returns None: the output is left as it is
        return hook

    trainer.teacher.bert.encoder.layer[0].attention.self.query.register_forward_hook(record("teacher"))
    trainer.student.bert.encoder.layer[0].attention.self.query.register_forward_hook(record("student"))
    result = trainer.train()  # Trainer's own step: accelerate prepares the student with autocast
    assert seen == {"student": {torch.bfloat16}, "teacher": {torch.bfloat16}}
    assert torch.isfinite(torch.tensor(result.training_loss))
    assert {p.dtype for p in trainer.teacher.parameters()} == {torch.float32}  # autocast, not a cast of the weights
    assert {p.dtype for p in trainer.model.parameters()} == {torch.float32}
