"""Fixtures for the deltanas.delta tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    # On small 2-core machines multi-threaded CPU SVD (used to initialise students) can take
    # ~0.2 s per call on tiny matrices, against ~0.2 ms single-threaded; restored afterwards.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
