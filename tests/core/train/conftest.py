import pytest
import torch


@pytest.fixture
def one_thread():
    """Small models on a loaded 2-core box: one torch thread is the fastest (measured: the
    BN-ResNet example's epoch took 7.3 s with 2 threads, 1.5 s with 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
