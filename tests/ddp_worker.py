"""Per-process script of the two-process (gloo, CPU) distillation test; launched by torch.distributed.run."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import torch  # noqa: E402

from helpers_trainer import make_trainer  # noqa: E402

output_dir = sys.argv[1]
trainer = make_trainer(output_dir, max_steps=4, per_device_train_batch_size=4, ddp_backend="gloo")
trainer.train()
rank = int(os.environ["RANK"])
state = {k: v.detach().double().sum().item() for k, v in trainer.student.state_dict().items()}
proj = {k: v.detach().double().sum().item() for k, v in trainer.projections.state_dict().items()}
with open(os.path.join(output_dir, f"rank{rank}.json"), "w") as f:
    json.dump({"world_size": trainer.args.world_size, "step": trainer.state.global_step, "student": state, "projections": proj}, f)
# Tear the gloo group down before exit: leaving it to interpreter shutdown can abort a process
# ("terminate called without an active exception") after the work is done.
if torch.distributed.is_initialized():
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
