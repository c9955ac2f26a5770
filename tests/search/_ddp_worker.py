"""Run under torchrun by test_distributed.py: a tiny search on two CPU processes (gloo)."""

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from deltanas._run import RunDir  # noqa: E402
from deltanas.search import SearchConfig, init_distributed, search  # noqa: E402
from tests.search._tiny import TINY_DATA, TinyTeacher, tiny_data  # noqa: E402


def main(out: Path) -> None:
    torch.set_num_threads(1)
    ctx = init_distributed()
    run = RunDir.create("ddp", out) if ctx.is_main else RunDir(out / "ddp")
    ctx.barrier()
    config = SearchConfig(teacher="tiny", data=TINY_DATA, steps=6, warmup_steps=1, finetune_steps=1, prior_groups=1,
                          checkpoint_every=3, log_every=3, arch_lr=0.1, target="0.3x")
    result = search(config, run, data=tiny_data(TINY_DATA), teacher=TinyTeacher(), progress=False)
    (out / f"rank{ctx.rank}.json").write_text(json.dumps({"world": ctx.world_size, "arch": result.arch.to_dict(),
                                                          "probs": result.probabilities}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
