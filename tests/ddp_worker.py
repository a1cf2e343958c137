"""Per-process script of the two-process (gloo, CPU) distillation tests; launched by torch.distributed.run.

    ddp_worker.py OUTPUT_DIR ENGINE      # ENGINE: ddp | fully_shard | zero2 | zero3

ddp: Trainer's own loop under DDP. zero2 / zero3: Trainer's own loop under DeepSpeed ZeRO stage 2 / 3, configured
through TrainingArguments' `deepspeed=` (DeepSpeed's CPU accelerator, over the gloo group accelerate opened: use_cpu
stays on, see docs/scaling.md). fully_shard: FSDP2 on CPU. accelerate enables FSDP only on accelerator devices
(on CPU it silently falls back to DDP), so here the trainer's module (student + projections) is sharded with
`fully_shard` by hand, as accelerate does on GPUs, and trained with the trainer's compute_loss; the final save
gathers the full state dict and hands it to the trainer's save, as Trainer.save_model does under FSDP.
"""

import contextlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import torch  # noqa: E402

from helpers_trainer import make_trainer  # noqa: E402


def deepspeed_config(stage):
    """ZeRO stage 2 or 3 in full precision; Trainer fills each "auto" from its arguments and the student's width
    (ZeRO-3's persistence threshold of 10 x hidden size keeps only the tiny model's small tensors whole)."""
    zero = {"stage": stage}
    if stage == 3:
        zero.update(stage3_param_persistence_threshold="auto", reduce_bucket_size="auto",
                    stage3_prefetch_bucket_size="auto",
                    stage3_gather_16bit_weights_on_model_save=True)  # save_model writes the whole student
    return {"zero_optimization": zero, "bf16": {"enabled": False}, "fp16": {"enabled": False},
            "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto", "train_batch_size": "auto"}


def partitioned(module):
    """Whether this rank holds only shards of some of the module's parameters: DTensors under fully_shard; under
    ZeRO-3, parameters whose local tensor is empty (the rank's partition lives in `ds_tensor`)."""
    return any(type(p).__name__ == "DTensor" or (hasattr(p, "ds_numel") and p.numel() == 0 < p.ds_numel)
               for p in module.parameters())


def gathered(module):
    # Under ZeRO-3 a rank's parameters are empty outside this context: gather them before reading values.
    if engine != "zero3":
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(list(module.parameters()))


def sums(module):
    # full_tensor(): under fully_shard each rank holds a shard (DTensor); compare whole tensors.
    with gathered(module):
        return {k: (v.full_tensor() if hasattr(v, "full_tensor") else v).detach().double().sum().item()
                for k, v in module.state_dict().items()}


def teacher_engine(teacher):
    """How the frozen teacher is held: its DeepSpeed engine's ZeRO stage and whether its parameters are partitioned
    (None when the teacher is a plain module)."""
    if not hasattr(teacher, "zero_optimization_stage"):
        return None
    return {"stage": teacher.zero_optimization_stage(), "partitioned": partitioned(teacher.module),
            "training": teacher.module.training}


output_dir, engine = sys.argv[1], sys.argv[2]
settings = {"deepspeed": deepspeed_config(int(engine[-1]))} if engine.startswith("zero") else {}
# Every loss on, MiniLMv2's relations too: their forward hooks must see the projections inside every engine's wrapper.
trainer = make_trainer(output_dir, max_steps=4, per_device_train_batch_size=4, ddp_backend="gloo", relation_weight=1.0,
                       **settings)
before = {k: v.detach().double().sum().item() for k, v in trainer.student.state_dict().items()}
projections_before = {k: v.detach().double().sum().item() for k, v in trainer.projections.state_dict().items()}
if engine in ("ddp", "zero2", "zero3"):
    trainer.train()
    trainer.save_model(os.path.join(output_dir, "student"))
else:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh("cpu", (trainer.args.world_size,))
    model = trainer.model
    for layer in model.student.bert.encoder.layer:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)  # the root holds the embeddings, the head and the projections
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for step, batch in zip(range(4), trainer.get_train_dataloader()):
        loss = trainer.compute_loss(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        trainer.state.global_step = step + 1
    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    trainer._save(os.path.join(output_dir, "student"), state_dict=full)
sharded = partitioned(trainer.model)
state, proj = sums(trainer.student), sums(trainer.projections)
rank = int(os.environ["RANK"])
with open(os.path.join(output_dir, f"rank{rank}.json"), "w") as f:
    json.dump({"world_size": trainer.args.world_size, "step": trainer.state.global_step, "student": state,
               "projections": proj, "before": before,
               "projections_before": projections_before, "sharded": sharded,
               "teacher_engine": teacher_engine(trainer.teacher),
               # The loss components that ran: logged by Trainer's loop, still pending in the hand-written one.
               "components": sorted(set(trainer._component_sums) | {k[len("loss_"):] for h in trainer.state.log_history
                                                                    for k in h if k.startswith("loss_")})}, f)
# Tear the gloo group down before exit: leaving it to interpreter shutdown can abort a process
# ("terminate called without an active exception") after the work is done.
if torch.distributed.is_initialized():
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
