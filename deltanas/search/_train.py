"""The supernet phase of a search: students and architecture logits trained together under the budget."""

from __future__ import annotations

import time

import torch
from torch import nn
from tqdm.auto import tqdm

from .._run import RunDir
from ..errors import TrainingError
from ..training import DistillLoss, LossWeights, VideoData
from ._budget import Budget
from ._config import SearchConfig
from ._distributed import DistContext
from ._penalty import make_penalty
from ._sensitivity import layer_sensitivity, logits_for_budget
from ._supernet import Supernet

__all__ = ["train_supernet"]


class _Objective(nn.Module):
    """One search step's loss as a module, so DistributedDataParallel can wrap it."""

    def __init__(self, supernet: Supernet, loss: DistillLoss) -> None:
        super().__init__()
        self.model = supernet.model
        self.supernet = supernet
        self.loss = loss

    def forward(self, frames: torch.Tensor):
        return self.loss(frames), self.supernet.expected_macs()


def train_supernet(config: SearchConfig, run: RunDir, supernet: Supernet, budget: Budget, data: VideoData,
                   ctx: DistContext, resume: bool, progress: bool, seconds: dict[str, float]) -> None:
    """Train the supernet's students and architecture logits under the budget's penalty, from the sensitivity
    prior (or the checkpoint when resuming), checkpointing as it goes; ``seconds`` gets the phases' times."""
    ckpt_path = run.path / "search_checkpoint.pt"
    data_gen = torch.Generator().manual_seed(config.seed * 1000 + ctx.rank)
    arch_gen = torch.Generator().manual_seed(config.seed)  # the same on every rank: same sampled ops
    sampler = data.sampler(config.data, data_gen)
    loss = DistillLoss(supernet.model, LossWeights(config.output_weight, config.kl_weight, config.layer_weight,
                                                    config.anchor_weight))
    penalty = make_penalty(config.penalty, config.penalty_weight)
    if config.penalty == "lagrangian":
        penalty.rate = config.dual_rate
    weights_opt = torch.optim.AdamW(supernet.weight_parameters(), lr=config.weight_lr)
    arch_opt = torch.optim.Adam(supernet.alpha_parameters(), lr=config.arch_lr, betas=(0.5, 0.999))
    step = 0
    if resume and ckpt_path.is_file():
        state = run.load_checkpoint(ckpt_path)
        supernet.model.load_state_dict(state["supernet"], strict=False)
        weights_opt.load_state_dict(state["weights_opt"])
        arch_opt.load_state_dict(state["arch_opt"])
        data_gen.set_state(state["data_gen"])
        arch_gen.set_state(state["arch_gen"])
        penalty.load_state(state["penalty"])
        step = state["step"]
        run.truncate_metrics(step, run.path / "search_metrics.csv")
        run.truncate_metrics(step, run.path / "probs.csv")
        if ctx.is_main:
            run.log(f"search resumed at step {step}")
    else:
        t0 = time.time()
        if config.prior == "sensitivity":
            prior_gen = torch.Generator().manual_seed(config.seed + 7919)
            groups = data.sampler(config.data, prior_gen).sample(config.prior_groups).frames
            errors = layer_sensitivity(supernet, groups, progress=progress and ctx.is_main)
            logits, mu = logits_for_budget(errors, supernet.macs, supernet.linear_macs, budget.delta_macs,
                                           config.prior_scale)
            with torch.no_grad():
                for name, value in logits.items():
                    supernet.mixed[name].alpha.copy_(value)
            if ctx.is_main:
                run.log(f"sensitivity prior: mu={mu:.4g}, expected MACs at start "
                        f"{float(supernet.expected_macs().detach()) / budget.delta_macs:.3f} x target")
            if ctx.is_main:
                run.write_json(run.path / "sensitivity.json",
                               {n: dict(zip(supernet.mixed[n].specs, e.tolist())) for n, e in errors.items()})
        seconds["prior"] = time.time() - t0

    objective: nn.Module = _Objective(supernet, loss)
    if ctx.enabled:
        objective = nn.parallel.DistributedDataParallel(objective, find_unused_parameters=True,
                                                        broadcast_buffers=False)

    def checkpoint() -> None:
        if ctx.is_main:
            students = {k: v for k, v in supernet.model.state_dict().items() if ".student." in k}
            run.save_checkpoint({"step": step, "supernet": students, "weights_opt": weights_opt.state_dict(),
                                 "arch_opt": arch_opt.state_dict(), "data_gen": data_gen.get_state(),
                                 "arch_gen": arch_gen.get_state(), "penalty": penalty.state()}, ckpt_path)

    t0 = time.time()
    target = budget.delta_macs
    supernet.model.train()
    bar = tqdm(total=config.steps, initial=step, desc=f"search {run.path.name}", unit="step",
               disable=not (progress and ctx.is_main))
    while step < config.steps:
        tau = config.tau(step)
        supernet.sample(tau, config.gumbel == "hard", arch_gen)
        frames = sampler.sample(config.batch_groups).frames
        terms, expected = objective(frames)
        total = penalty.combine(terms.total, expected.float(), target)
        if not torch.isfinite(total):
            raise TrainingError(f"search loss became {float(total)} at step {step + 1}: lower --arch-lr/--lr "
                                f"(--resume continues from the last checkpoint)")
        weights_opt.zero_grad(set_to_none=True)
        arch_opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(supernet.weight_parameters(), 1.0)
        weights_opt.step()
        arch_moves = step >= config.warmup_steps
        if arch_moves:
            arch_opt.step()
            with torch.no_grad():
                penalty.after_step(float(supernet.expected_macs()), target)
        step += 1
        supernet.clear_sample()
        e = float(expected.detach())
        if ctx.is_main:
            run.append_metrics({"step": step, "tau": tau, **terms.as_dict(), "objective": float(total.detach()),
                                "expected_macs": e, "expected_over_target": e / target,
                                "penalty_weight": penalty.weight}, run.path / "search_metrics.csv")
            if step % config.log_every == 0 or step == config.steps:
                for name, probs in supernet.probabilities().items():
                    for spec, p in zip(supernet.mixed[name].specs, probs.tolist()):
                        run.append_metrics({"step": step, "layer": name, "op": spec, "prob": p},
                                           run.path / "probs.csv")
        if step % config.checkpoint_every == 0 or step == config.steps:
            checkpoint()
        bar.update()
        bar.set_postfix(loss=f"{terms.total.item():.3f}", E=f"{e / target:.2f}T", tau=f"{tau:.2f}")
    bar.close()
    seconds["search"] = seconds.get("search", 0.0) + time.time() - t0
    supernet.model.eval()
