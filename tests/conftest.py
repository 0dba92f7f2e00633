"""Shared test settings: single-threaded torch (repeatable numerics, fair on a 2-core machine), a fixed seed.

Under pytest-xdist (`make test` runs one worker per core) every worker is one core's job: the `nas` processes
the tests start get one thread too (OMP_NUM_THREADS, which caps torch's default), so N workers never run 2N
spinning OpenMP threads on N cores."""
import os

import pytest
import torch

torch.set_num_threads(1)
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
