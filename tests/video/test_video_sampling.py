"""Group sampling for training and the deterministic group iterator for evaluation."""

from __future__ import annotations

import pytest
import torch

from deltanas.errors import ConfigError
from deltanas.video import GroupSampler, SampledGroups, iter_groups


def _counting_clip(n: int, h: int = 4, w: int = 6) -> torch.Tensor:
    """Frame t filled with value t: a frame's content tells where it came from."""
    return torch.arange(n, dtype=torch.uint8)[:, None, None, None].expand(n, 3, h, w).contiguous()


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_shapes_and_distances() -> None:
    sampler = GroupSampler([_counting_clip(40), _counting_clip(25)], 8, 3, generator=_gen(0))
    batch = sampler.sample(64)
    assert isinstance(batch, SampledGroups)
    assert batch.frames.shape == (64, 4, 3, 4, 6) and batch.frames.dtype == torch.float32
    assert batch.distances.shape == (64, 3) and batch.distances.dtype == torch.long
    assert 0.0 <= batch.frames.min() and batch.frames.max() <= 1.0
    d = batch.distances
    assert bool((d >= 1).all() and (d <= 7).all())
    assert bool((d[:, 1:] > d[:, :-1]).all())  # sorted and distinct
    assert len({tuple(row) for row in d.tolist()}) > 10  # really drawn, not fixed


def test_frames_are_the_key_and_the_later_frames() -> None:
    clips = [_counting_clip(30), _counting_clip(50)]
    batch = GroupSampler(clips, 6, 2, generator=_gen(1)).sample(32)
    values = (batch.frames[:, :, 0, 0, 0] * 255).round().long()
    expected = torch.cat([batch.key_index[:, None], batch.key_index[:, None] + batch.distances], dim=1)
    assert torch.equal(values, expected)
    lengths = torch.tensor([30, 50])[batch.clip_index]
    assert bool((batch.key_index + 6 - 1 < lengths).all())  # the whole K-frame group fits


def test_all_later_frames() -> None:
    batch = GroupSampler([_counting_clip(10)], 5, 4, generator=_gen(0)).sample(8)
    assert torch.equal(batch.distances, torch.tensor([[1, 2, 3, 4]]).expand(8, 4))


def test_same_seed_same_batches_other_seed_differs() -> None:
    clips = [_counting_clip(60, 12, 16), _counting_clip(45, 12, 16)]

    def draw(seed: int) -> list[SampledGroups]:
        sampler = GroupSampler(clips, 8, 2, crop=(8, 8), flip=True, generator=_gen(seed))
        return [sampler.sample(16) for _ in range(3)]

    a, b, c = draw(7), draw(7), draw(8)
    for x, y in zip(a, b):
        assert torch.equal(x.frames, y.frames) and torch.equal(x.distances, y.distances)
    assert any(not torch.equal(x.distances, z.distances) or not torch.equal(x.key_index, z.key_index) for x, z in zip(a, c))


def test_global_rng_is_left_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    GroupSampler([_counting_clip(20)], 4, 2, crop=(2, 2), flip=True, generator=_gen(0)).sample(8)
    assert torch.equal(torch.rand(3), expected)


def test_crop_and_flip_are_the_same_for_every_frame_of_a_group() -> None:
    image = torch.randint(0, 256, (3, 10, 14), dtype=torch.uint8, generator=_gen(3))
    still = image.expand(20, 3, 10, 14).contiguous()  # a static scene: any group has no motion
    batch = GroupSampler([still], 6, 3, crop=(6, 8), flip=True, generator=_gen(4)).sample(48)
    assert batch.frames.shape == (48, 4, 3, 6, 8)
    assert torch.equal(batch.frames, batch.frames[:, :1].expand_as(batch.frames))
    # Each group is one crop of the image, flipped or not; both kinds and several positions occur.
    crops = {}
    for top in range(10 - 6 + 1):
        for left in range(14 - 8 + 1):
            patch = image[:, top : top + 6, left : left + 8]
            crops[patch.float().div(255).numpy().tobytes()] = (top, left, False)
            crops[patch.flip(-1).float().div(255).numpy().tobytes()] = (top, left, True)
    found = [crops.get(group[0].numpy().tobytes()) for group in batch.frames]
    assert None not in found
    assert {f[2] for f in found} == {False, True}
    assert len({f[:2] for f in found}) > 5


def test_clips_weighted_by_usable_length_and_short_ones_skipped() -> None:
    clips = [_counting_clip(4, 1, 1), _counting_clip(5, 1, 1), _counting_clip(103, 1, 1)]  # K=5: 0, 1, 99 keys
    batch = GroupSampler(clips, 5, 1, generator=_gen(0)).sample(4000)
    counts = torch.bincount(batch.clip_index, minlength=3).tolist()
    assert counts[0] == 0
    assert 10 <= counts[1] <= 80  # expected 40
    # Key positions are uniform over the long clip.
    keys = batch.key_index[batch.clip_index == 2]
    assert int(keys.min()) == 0 and int(keys.max()) == 98


@pytest.mark.parametrize(
    ("clips", "k", "later", "kwargs"),
    [
        ([_counting_clip(20)], 4, 4, {}),  # later_frames > K - 1
        ([_counting_clip(20)], 4, 0, {}),
        ([_counting_clip(20)], 1, 1, {}),
        ([_counting_clip(3)], 4, 2, {}),  # nothing long enough
        ([_counting_clip(20, 4, 6), _counting_clip(20, 6, 6)], 4, 2, {}),  # sizes differ, no crop
        ([_counting_clip(20, 4, 6)], 4, 2, {"crop": (5, 5)}),  # crop larger than frames
        ([_counting_clip(20).float()], 4, 2, {}),  # not uint8
    ],
)
def test_bad_configurations_raise_config_error(clips: list, k: int, later: int, kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        GroupSampler(clips, k, later, generator=_gen(0), **kwargs)


def test_differing_sizes_work_with_a_crop() -> None:
    clips = [_counting_clip(20, 4, 6), _counting_clip(20, 8, 8)]
    batch = GroupSampler(clips, 4, 2, crop=(4, 4), generator=_gen(0)).sample(16)
    assert batch.frames.shape == (16, 3, 3, 4, 4)


@pytest.mark.parametrize(("n", "k"), [(17, 8), (16, 8), (3, 8), (5, 1)])
def test_iter_groups_covers_every_frame_once(n: int, k: int) -> None:
    clip = _counting_clip(n)
    groups = list(iter_groups(clip, k))
    assert all(1 <= len(g) <= k for g in groups)
    assert all(len(g) == k for g in groups[:-1])
    assert all(g.dtype == torch.float32 for g in groups)
    joined = torch.cat(groups)
    assert torch.equal((joined * 255).round().to(torch.uint8), clip)
