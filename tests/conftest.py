import pytest
import torch

from ganmemory.nets import NetConfig


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture
def tiny_cfg() -> NetConfig:
    """The smallest network: 16 px, nf 4 (fast on CPU)."""
    return NetConfig(resolution=16, nf=4, z_dim=8)
