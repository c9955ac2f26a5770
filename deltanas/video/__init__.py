"""Video input for delta distillation: clips (bundled, static, shared, your own), decoding, caching,
time splits and group sampling."""

from deltanas.video._bundled import bundled_clips, shared_clips, static_clips
from deltanas.video._cache import FrameCache
from deltanas.video._clip import Clip, load_clip, load_clips
from deltanas.video._decode import read_frames
from deltanas.video._sampling import GroupSampler, SampledGroups, iter_groups
from deltanas.video._sources import VideoSource, resolve_sources
from deltanas.video._split import TimeSplit, split_in_time

__all__ = [
    "bundled_clips",
    "shared_clips",
    "static_clips",
    "VideoSource",
    "resolve_sources",
    "read_frames",
    "FrameCache",
    "Clip",
    "load_clip",
    "load_clips",
    "TimeSplit",
    "split_in_time",
    "GroupSampler",
    "SampledGroups",
    "iter_groups",
]
