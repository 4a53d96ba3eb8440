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


@pytest.fixture
def tiny_source(tmp_path, tiny_cfg):
    """A randomly initialised 16 px source file (fast to train tasks on)."""
    from ganmemory.nets import Discriminator, Generator
    from ganmemory.source import Source
    torch.manual_seed(123)
    src = Source(tiny_cfg, Generator(tiny_cfg), Discriminator(tiny_cfg), {"test": True})
    path = tmp_path / "tiny_source.safetensors"
    src.save(path)
    return path


@pytest.fixture
def image_folder(tmp_path):
    """Two small synthetic image folders, one per task, 16x16 RGB."""
    import numpy as np
    from PIL import Image

    def make(name, seed):
        d = tmp_path / name
        d.mkdir()
        rng = np.random.default_rng(seed)
        for i in range(24):
            arr = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(arr).save(d / f"{i}.png")
        return str(d)

    return {"a": make("data_a", 1), "b": make("data_b", 2), "c": make("data_c", 3)}
