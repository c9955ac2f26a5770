"""The search under torchrun with two CPU processes (gloo): both ranks derive the same architecture."""

import json
import os
import subprocess
import sys
from pathlib import Path


def test_two_processes_agree_on_the_derived_architecture(tmp_path):
    worker = Path(__file__).with_name("_ddp_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(worker), str(tmp_path)], env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["world"] == ranks[1]["world"] == 2
    arch = ranks[0]["arch"]
    assert arch == ranks[1]["arch"] and (arch["layers"] or arch["default"] != "full")
    # each rank saw other frames, yet the logits stayed identical: gradients were averaged every step
    for layer, probs in ranks[0]["probs"].items():
        for op, p in probs.items():
            assert abs(p - ranks[1]["probs"][layer][op]) < 1e-5, (layer, op)
    assert any(abs(p - 1 / len(probs)) > 1e-3 for probs in ranks[0]["probs"].values() for p in probs.values())
    # rank 0 alone wrote the run folder
    assert (tmp_path / "ddp" / "arch.json").is_file() and (tmp_path / "ddp" / "summary.json").is_file()
    metrics = (tmp_path / "ddp" / "search_metrics.csv").read_text().splitlines()
    assert len(metrics) == 7  # header + 6 steps, written once

