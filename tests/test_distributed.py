"""DistillationTrainer under torchrun: two CPU processes (gloo) stay in sync."""

import json
import os
import socket
import subprocess
import sys

import pytest


def test_two_process_gloo_run_keeps_ranks_in_sync(tmp_path):
    with socket.socket() as probe:  # torchrun's --master_port 0 does not pick a port for the workers
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1")
    worker = os.path.join(os.path.dirname(__file__), "ddp_worker.py")
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                             "--master_port", str(port), worker, str(tmp_path)], env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world_size"] == 2 and r["step"] == 4 for r in ranks)
    # DDP wraps the student and the projections as one module: both stay identical on both ranks.
    for key in ("student", "projections"):
        for name, value in ranks[0][key].items():
            assert value == pytest.approx(ranks[1][key][name], rel=1e-6, abs=1e-6), (key, name)
