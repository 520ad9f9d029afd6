"""Shared test settings."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Tests run tiny models and maps on a shared 2-core machine, where a second intra-op
    thread only adds contention (a small ResNet test took 25 s with 2 threads, 1 s with 1).
    Restored after each test, so a test may still ask for more."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
