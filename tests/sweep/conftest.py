"""One torch thread in these tests: on a shared 2-core machine, spinning OpenMP threads that other
processes preempt make tiny convolutions many times slower."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
