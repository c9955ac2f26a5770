"""Training on the real teacher and a real bundled clip (small frames, few steps)."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from deltanas._run import RunDir
from deltanas.errors import ConfigError, TrainingError
from deltanas.export import load_model, student_state
from deltanas.training import DistillLoss, LossWeights, TrainConfig, build_model, load_video_data, train
from deltanas.training import _trainer


@pytest.fixture(scope="module")
def data(small_data_config):
    return load_video_data(small_data_config)


def _config(small_data_config, **kw):
    base = dict(arch="uniform:lowrank:0.25", data=small_data_config, steps=6, val_every=3, val_groups=2,
                checkpoint_every=3, warmup_steps=2, patience=0, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_train_writes_a_complete_run_folder(tmp_path, lite0, data, small_data_config):
    run = RunDir.create("r", tmp_path)
    result = train(_config(small_data_config), run, data=data, teacher=lite0, progress=False)
    for name in ("config.json", "arch.json", "metrics.csv", "checkpoint.pt", "students.safetensors",
                 "summary.json", "log.txt"):
        assert (run.path / name).is_file(), name
    rows = _rows(run.metrics)
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert all(float(r["loss"]) > 0 for r in rows)
    assert rows[2]["val_fidelity"] and not rows[0]["val_fidelity"]
    summary = json.loads(run.summary.read_text())
    assert 1.5 < summary["speedup"] < 8 and summary["test"]["frames"] > 0
    arch = json.loads(run.arch.read_text())
    assert arch["teacher"] == "efficientnet_lite0" and len(arch["layers"]) == 49
    # the exported model reproduces the trained one
    again = load_model(run.path, teacher=lite0)
    frames = data.test[0][:4].float().div(255)[None]
    torch.testing.assert_close(again.forward_group(frames), result.model.forward_group(frames))


def test_training_lowers_the_loss_on_held_out_groups(tmp_path, lite0, data, small_data_config):
    """One cheap student on the head: trained, it tracks the teacher's delta better than its SVD start."""
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps({"layers": {"_conv_head": "lowrank:0.0625"}}))
    config = _config(small_data_config, arch=str(arch), steps=25, lr=3e-3, anchor_weight=0.0,
                     val_every=25, checkpoint_every=25)
    val = data.val[0].float().div(255)
    batch = torch.stack([val[i:i + 3] for i in (0, 2)])  # two groups: key + 2 later frames
    untrained = build_model(config, lite0)
    before = DistillLoss(untrained, LossWeights(kl=0.0, anchor=0.0))(batch)
    result = train(config, RunDir.create("h", tmp_path), data=data, teacher=lite0, progress=False,
                   evaluate_test=False)
    after = DistillLoss(result.model, LossWeights(kl=0.0, anchor=0.0))(batch)
    assert after.output < before.output


def test_killed_run_resumes_to_the_same_result(tmp_path, lite0, data, small_data_config, monkeypatch):
    config = _config(small_data_config)
    straight = train(config, RunDir.create("a", tmp_path), data=data, teacher=lite0, progress=False,
                     evaluate_test=False)

    calls = {"n": 0}
    real_call = DistillLoss.__call__

    def dying(self, frames):
        calls["n"] += 1
        if calls["n"] == 5:  # killed during step 5: the checkpoint of step 3 survives
            raise KeyboardInterrupt
        return real_call(self, frames)

    monkeypatch.setattr(DistillLoss, "__call__", dying)
    run = RunDir.create("b", tmp_path)
    with pytest.raises(KeyboardInterrupt):
        train(config, run, data=data, teacher=lite0, progress=False, evaluate_test=False)
    assert run.load_checkpoint()["step"] == 3
    assert [int(r["step"]) for r in _rows(run.metrics)] == [1, 2, 3, 4]
    monkeypatch.setattr(DistillLoss, "__call__", real_call)

    with pytest.raises(ConfigError, match="exists already"):
        RunDir.create("b", tmp_path)
    resumed = train(config, RunDir.create("b", tmp_path, resume=True), resume=True, data=data, teacher=lite0,
                    progress=False, evaluate_test=False)
    assert [int(r["step"]) for r in _rows(run.metrics)] == [1, 2, 3, 4, 5, 6]
    a, b = student_state(straight.model), student_state(resumed.model)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6)


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_run(tmp_path, lite0, data, small_data_config,
                                                             monkeypatch):
    real_call = DistillLoss.__call__
    calls = {"n": 0}

    def poisoned(self, frames):
        terms = real_call(self, frames)
        calls["n"] += 1
        if calls["n"] == 4:
            terms.total = terms.total * float("nan")
        return terms

    monkeypatch.setattr(DistillLoss, "__call__", poisoned)
    run = RunDir.create("n", tmp_path)
    with pytest.raises(TrainingError, match="loss became nan at step 4"):
        train(_config(small_data_config), run, data=data, teacher=lite0, progress=False)
    assert run.load_checkpoint()["step"] == 3  # the last good checkpoint is intact
    assert run.config.is_file()


def test_seed_reproduces_and_changes_the_batches(small_data_config, data):
    draws = []
    for seed in (1, 1, 2):
        sampler = data.sampler(small_data_config, torch.Generator().manual_seed(seed))
        draws.append(sampler.sample(2).frames)
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])


def test_lr_schedule_warms_up_then_decays(small_data_config):
    config = _config(small_data_config, steps=100, warmup_steps=10)
    lrs = [_trainer.lr_at(s, config) for s in range(100)]
    assert lrs[0] < lrs[9] == pytest.approx(config.lr)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:])) and lrs[-1] < 0.1 * config.lr


def test_config_round_trip_and_refusals(tmp_path, small_data_config):
    config = _config(small_data_config)
    config.save(tmp_path / "c.json")
    assert TrainConfig.load(tmp_path / "c.json") == config
    bad = config.to_dict()
    bad["data"]["colour"] = "red"
    with pytest.raises(ConfigError, match="colour"):
        TrainConfig.from_dict(bad)
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ConfigError, match="malformed JSON"):
        TrainConfig.load(tmp_path / "broken.json")


def test_learned_gates_pay_for_their_updates(lite0, small_data_config, data):
    """Training a learned skip-convolution gate with a higher cost weight leaves fewer positions active."""
    from deltanas.delta._gated import gated_layers

    fractions = []
    for weight in (0.0, 5.0):
        config = _config(small_data_config, arch="uniform:gated:learned(full)", gate_weight=weight, lr=0.05)
        model = build_model(config, lite0)
        loss = DistillLoss(model, LossWeights(layer=0.0, anchor=0.0, gate=weight))
        params = model.student_parameters()
        opt = torch.optim.Adam(params, lr=0.05)
        sampler = data.sampler(small_data_config, torch.Generator().manual_seed(0))
        for _ in range(15):
            terms = loss(sampler.sample(2).frames)
            opt.zero_grad()
            terms.total.backward()
            opt.step()
        gates = gated_layers(model).values()
        fractions.append(sum(float(g.expected_fraction.detach().mean()) for g in gates) / len(gates))
    assert fractions[1] < fractions[0]


def test_selection_clips_top_up_with_evenly_spread_training_groups_at_eval_size(data, small_data_config):
    k = small_data_config.keyframe_interval
    val_groups = min(3, -(-len(data.val[0]) // k))  # as counted: up to 3 per clip
    clips = data.selection_clips(k, 3, min_groups=val_groups + 5)  # 5 missing: 3 per clip at most
    assert clips[0][0] == "bikes" and torch.equal(clips[0][1], data.val[0])
    name, frames = clips[1]
    assert name == "bikes (train)" and frames.shape == (3 * k, 3, *small_data_config.eval_size)
    train = data.train_eval[0]
    assert len(train) == len(data.train[0]) and train.shape[-2:] == data.val[0].shape[-2:]
    # the first and the last group of the training split, and one between, K frames each
    assert torch.equal(frames[:k], train[:k]) and torch.equal(frames[-k:], train[-k:])
    assert not torch.equal(frames[k:2 * k], frames[:k])
    assert len(data.selection_clips(k, 3, min_groups=val_groups + 1)[1][1]) == k  # one group makes it up
    # the validation frames alone when they hold enough groups
    assert [n for n, _ in data.selection_clips(k, 3, min_groups=val_groups)] == ["bikes"]
    assert [n for n, _ in data.selection_clips(k, 3)] == ["bikes"]
