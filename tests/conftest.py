"""Shared test settings: single-threaded torch (repeatable numerics, fair on a 2-core machine), a fixed seed."""
import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
