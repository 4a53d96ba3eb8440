"""``pretrain --init``: training a source onward from another source's weights."""

from dataclasses import replace

import pytest
import torch

from ganmemory.errors import GanMemoryError
from ganmemory.pretrain import pretrain
from ganmemory.source import Source
from ganmemory.train import TrainConfig


def _cfg(iters: int, lr: float = 1e-3) -> TrainConfig:
    return TrainConfig(iters=iters, batch_size=4, lr_g=lr, lr_d=lr, sample_every=0, log_every=1, ckpt_every=1)


def _max_change(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_init_starts_at_the_source_and_records_it(tmp_path, tiny_cfg, tiny_source, image_folder):
    start = Source.load(tiny_source)
    # a step this small moves no weight measurably, so what is saved is where the run began
    res = pretrain(image_folder["a"], tmp_path / "on", tiny_cfg, _cfg(1, lr=1e-12), init=tiny_source, progress=False)
    onward = Source.load(res["source"])
    assert _max_change(onward.G, start.G) < 1e-6 and _max_change(onward.D, start.D) < 1e-6
    assert onward.info["init"]["hash"] == start.file_hash
    scratch = Source.load(pretrain(image_folder["a"], tmp_path / "scratch", tiny_cfg, _cfg(1, lr=1e-12),
                                   progress=False)["source"])
    assert _max_change(scratch.G, start.G) > 1e-2 and "init" not in scratch.info
    # and at an ordinary rate it does train onward from there
    moved = Source.load(pretrain(image_folder["a"], tmp_path / "moved", tiny_cfg, _cfg(3), init=tiny_source,
                                 progress=False)["source"])
    assert 1e-4 < _max_change(moved.G, start.G) < 1e-1


def test_init_of_another_network_is_refused(tmp_path, tiny_cfg, tiny_source, image_folder):
    with pytest.raises(GanMemoryError, match=r"--init '.*tiny_source.safetensors' is a source of network"):
        pretrain(image_folder["a"], tmp_path / "o", replace(tiny_cfg, nf=8), _cfg(1), init=tiny_source,
                 progress=False)
    assert not (tmp_path / "o").exists()


def test_resume_keeps_the_start(tmp_path, tiny_cfg, tiny_source, image_folder):
    out = tmp_path / "run"
    pretrain(image_folder["a"], out, tiny_cfg, _cfg(1), init=tiny_source, progress=False)
    with pytest.raises(GanMemoryError, match=r"it started from the source with hash [0-9a-f]+, and --init must "
                                             r"name it again"):
        pretrain(image_folder["a"], out, tiny_cfg, _cfg(2), resume=True, progress=False)
    with pytest.raises(GanMemoryError, match=r"training options differ from the checkpoint's \(--ema-beta 0\.999 "
                                             r"\(now 0\.99\)\); only --iters may change"):
        pretrain(image_folder["a"], out, tiny_cfg, replace(_cfg(2), ema_beta=0.99), resume=True, init=tiny_source,
                 progress=False)
    res = pretrain(image_folder["a"], out, tiny_cfg, _cfg(2), resume=True, init=tiny_source, progress=False)
    assert res["iterations"] == 2
    assert Source.load(res["source"]).info["init"]["hash"] == Source.load(tiny_source).file_hash
    scratch = tmp_path / "scratch"
    pretrain(image_folder["a"], scratch, tiny_cfg, _cfg(1), progress=False)
    with pytest.raises(GanMemoryError, match="it started from random weights, and --init names another"):
        pretrain(image_folder["a"], scratch, tiny_cfg, _cfg(2), resume=True, init=tiny_source, progress=False)
