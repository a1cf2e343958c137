"""DistillationTrainer under torchrun: two CPU processes (gloo), with DDP (Trainer's loop), with DeepSpeed ZeRO-2 and
ZeRO-3 (Trainer's loop, DeepSpeed's CPU accelerator; run only where deepspeed is installed) and with FSDP2
(`fully_shard` applied by hand: accelerate does not enable FSDP on CPU; see docs/scaling.md)."""

import json
import os
import socket
import subprocess
import sys

import pytest
from safetensors.torch import load_file


def run_two_processes(tmp_path, engine):
    with socket.socket() as probe:  # torchrun's --master_port 0 does not pick a port for the workers
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1")
    worker = os.path.join(os.path.dirname(__file__), "ddp_worker.py")
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                             "--master_port", str(port), worker, str(tmp_path), engine], env=env, capture_output=True,
                            text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]


def check_run(tmp_path, ranks):
    assert all(r["world_size"] == 2 and r["step"] == 4 for r in ranks)
    # One module (student + projections) is what the engine reduces: both stay identical on both ranks.
    for key in ("student", "projections"):
        for name, value in ranks[0][key].items():
            assert value == pytest.approx(ranks[1][key][name], rel=1e-6, abs=1e-6), (key, name)
    changed = [k for k, v in ranks[0]["student"].items() if v != pytest.approx(ranks[0]["before"][k], rel=1e-7, abs=1e-9)]
    assert len(changed) > len(ranks[0]["student"]) // 2  # it trained
    assert {"attention", "hidden", "relation"} <= set(ranks[0]["components"])  # hooks fired inside the engine's wrapper
    assert set(ranks[0]["projections"]) == {"0.weight", "0.bias", "1.weight", "1.bias", "2.weight", "2.bias"}
    assert all(v != pytest.approx(ranks[0]["projections_before"][k], rel=1e-7, abs=1e-9)
               for k, v in ranks[0]["projections"].items() if k.endswith("weight"))
    # The final folder is the whole student (gathered from the shards under FSDP), projections left out.
    saved = load_file(str(tmp_path / "student" / "model.safetensors"))
    assert saved.keys() == ranks[0]["student"].keys()
    for name, tensor in saved.items():
        assert tensor.double().sum().item() == pytest.approx(ranks[0]["student"][name], rel=1e-5, abs=1e-5), name
    # The record counts the whole student, not the part of it one rank holds (ZeRO-3 partitions parameters).
    record = json.loads((tmp_path / "student" / "compression_config.json").read_text())
    assert record["steps"][0]["params"]["student_shape"]["parameters"] == sum(t.numel() for t in saved.values())


def test_two_process_ddp_gloo_run_keeps_ranks_in_sync(tmp_path):
    ranks = run_two_processes(tmp_path, "ddp")
    check_run(tmp_path, ranks)
    assert not any(r["sharded"] for r in ranks)


@pytest.mark.slow
def test_two_process_fully_shard_gloo_run_trains_projections_and_saves_the_whole_student(tmp_path):
    ranks = run_two_processes(tmp_path, "fully_shard")
    assert all(r["sharded"] for r in ranks)  # each rank held shards (DTensor) of the student and the projections
    check_run(tmp_path, ranks)


@pytest.mark.slow
@pytest.mark.parametrize("stage", [2, 3])
def test_two_process_deepspeed_zero_gloo_run_keeps_ranks_in_sync_and_saves_the_whole_student(tmp_path, stage):
    pytest.importorskip("deepspeed")
    ranks = run_two_processes(tmp_path, f"zero{stage}")
    # ZeRO-3 partitions the student and the projections across the ranks; ZeRO-2 only gradients and optimizer state.
    assert all(r["sharded"] == (stage == 3) for r in ranks)
    # The frozen teacher is a DeepSpeed inference engine: partitioned like the student under ZeRO-3, whole otherwise.
    assert all(r["teacher_engine"] == {"stage": stage if stage == 3 else 0, "partitioned": stage == 3,
                                       "training": False} for r in ranks)
    check_run(tmp_path, ranks)


@pytest.mark.parametrize("name, engine, settings", [
    ("ddp", "MULTI_GPU", {}),
    ("fsdp", "FSDP", {"fsdp_version": 2, "fsdp_state_dict_type": "FULL_STATE_DICT"}),
    ("deepspeed_zero2", "DEEPSPEED", {"zero_stage": 2}),
    ("deepspeed_zero3", "DEEPSPEED", {"zero_stage": 3, "zero3_save_16bit_model": True}),
])
def test_accelerate_recipes_parse_as_the_engine_they_name(name, engine, settings):
    """accelerate's own parser reads each shipped config; a full student folder needs FSDP's full state dict and
    ZeRO-3's gathered 16-bit weights."""
    from accelerate.commands.config.config_args import load_config_from_file

    path = os.path.join(os.path.dirname(__file__), "..", "recipes", "accelerate", f"{name}.yaml")
    config = load_config_from_file(path)
    assert config.distributed_type.name == engine
    engine_settings = config.fsdp_config if engine == "FSDP" else config.deepspeed_config
    assert settings.items() <= (engine_settings or {}).items()
