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


@pytest.fixture
def stopped(monkeypatch):
    """``stopped(run, index)``: calls ``run()``, a lifelong run, and stops it with a
    KeyboardInterrupt (as a user's Ctrl-C) when task ``index`` (0-based) starts training."""
    import ganmemory.lifelong.runner as runner

    def stop(run, index):
        train_task = runner.train_task

        def interrupt(model, images, labels, strategy, cfg, i, *args, **kwargs):
            if i == index:
                raise KeyboardInterrupt
            return train_task(model, images, labels, strategy, cfg, i, *args, **kwargs)

        monkeypatch.setattr(runner, "train_task", interrupt)
        try:
            with pytest.raises(KeyboardInterrupt):
                run()
        finally:
            monkeypatch.setattr(runner, "train_task", train_task)

    return stop


@pytest.fixture
def resumed_equals_whole(tmp_path, stopped):
    """``check(run)``, ``run(out, resume=False, log=...)`` a three-task lifelong run: runs it whole,
    then stopped (a KeyboardInterrupt) while the third task trains, then resumed; asserts the
    resumed run's results, classifier and strategy state (but wall times) equal the whole run's
    exactly. Returns the resumed run's log lines."""
    import ganmemory.lifelong.runner as runner
    from ganmemory.errors import GanMemoryError
    from ganmemory.store import load_artifact

    def check(run):
        whole = run(tmp_path / "whole", log=lambda _: None)
        stopped(lambda: run(tmp_path / "cut", log=lambda _: None), 2)
        with pytest.raises(GanMemoryError, match=r"holds an unfinished lifelong run \(2 of 3 tasks done\): "
                                                 "pass --resume"):
            run(tmp_path / "cut", log=lambda _: None)
        lines = []
        resumed = run(tmp_path / "cut", resume=True, log=lines.append)
        for key in ("accuracy_matrix", "last_loss", "average_forgetting", "complete"):
            assert resumed[key] == whole[key], key
        a, _ = load_artifact(tmp_path / "whole" / runner.CHECKPOINT)
        b, _ = load_artifact(tmp_path / "cut" / runner.CHECKPOINT)
        timings = {"strategy.seconds"}  # mergan's GAN wall times
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a.keys() - timings)
        with pytest.raises(GanMemoryError, match="is already complete"):
            run(tmp_path / "cut", resume=True, log=lambda _: None)
        return lines

    return check


@pytest.fixture
def diverge_before(monkeypatch):
    """``diverge_before(step)`` makes GAN training diverge: one D weight turns to NaN just
    before ``step`` runs, so the real step computes non-finite losses, as a diverged GAN does."""
    from ganmemory.train import GANTrainer
    real = GANTrainer.train_step

    def patch(step):
        def poisoned(self, *a, **k):
            if self.iteration + 1 == step:
                with torch.no_grad():
                    self.d_params[0].fill_(float("nan"))
            return real(self, *a, **k)
        monkeypatch.setattr(GANTrainer, "train_step", poisoned)
    return patch
