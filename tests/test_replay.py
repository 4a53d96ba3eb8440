"""The generative-replay strategies of lifelong classification: gan-memory and mergan."""

import numpy as np
import pytest
import torch

from ganmemory.images import to_uint8
from ganmemory.lifelong.classifier import Classifier
from ganmemory.lifelong.config import LifelongConfig
from ganmemory.lifelong.judge import class_confidence, keep_most_confident, train_judge
from ganmemory.lifelong.runner import run_lifelong
from ganmemory.lifelong.strategies.gan_memory import GanMemoryReplay, bank_task_name
from ganmemory.lifelong.strategies.generative import replay_gan_config
from ganmemory.lifelong.strategies.mergan import grow_discriminator, grow_generator
from ganmemory.lifelong.tasks import load_task_data, parse_tasks
from ganmemory.memory import MemoryBank
from ganmemory.nets import Discriminator, Generator
from ganmemory.seeds import derive_seed
from ganmemory.source import latents
from ganmemory.train import TrainConfig

TASKS = "mnist:0,1;mnist:2,3;mnist:4,5"


def quiet(*_):
    pass


def tiny_run(tmp_path, tiny_source, strategy, tasks=TASKS, **kwargs):
    cfg = LifelongConfig(iters=3, batch_size=8, replay_pool=12, resolution=16, seed=1)
    gan = replay_gan_config(seed=1, iters=2, batch_size=4)
    return run_lifelong(parse_tasks(tasks, None), strategy, cfg, tmp_path / strategy, progress=False, log=quiet,
                        strategy_kwargs={"gan": gan, "source": tiny_source, "progress": False, **kwargs})


def test_gan_memory_run_leaves_earlier_tasks_untouched(tmp_path, tiny_source, image_folder, monkeypatch):
    bank = MemoryBank.create(tmp_path / "bank", tiny_source)
    bank.learn("other", image_folder["a"], TrainConfig(iters=2, batch_size=4, sample_every=0, ckpt_every=0),
               progress=False, log=quiet)
    other = (bank.root / "tasks" / "other.safetensors").read_bytes()
    tasks = parse_tasks(TASKS, None)
    first = bank.root / "tasks" / f"{bank_task_name(0, tasks[0])}.safetensors"
    seen_first = []

    original = GanMemoryReplay.before_task

    def spy(self, model, index, task, data, seen):  # the first lifelong task's file when the third begins
        if index == 2:
            seen_first.append(first.read_bytes())
        original(self, model, index, task, data, seen)

    monkeypatch.setattr(GanMemoryReplay, "before_task", spy)
    res = tiny_run(tmp_path, tiny_source, "gan-memory", bank=bank.root)
    assert len(res["accuracy_matrix"]) == 3
    assert (bank.root / "tasks" / "other.safetensors").read_bytes() == other
    assert first.read_bytes() == seen_first[0]
    assert sorted(MemoryBank(bank.root).tasks()) == sorted(["other"] + [bank_task_name(i, t) for i, t in enumerate(tasks)])
    assert res["strategy_summary"]["pool"] == {bank_task_name(0, tasks[0]): 12, bank_task_name(1, tasks[1]): 12}


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_gan_memory_replay_batch_composition(tmp_path, tiny_source, share):
    tasks = parse_tasks(TASKS, None)
    cfg = LifelongConfig(iters=1, batch_size=8, replay_pool=10, resolution=16, seed=2, replay_current=share)
    s = GanMemoryReplay(cfg, tmp_path / "run", quiet, gan=replay_gan_config(2, iters=2, batch_size=4),
                        source=tiny_source, progress=False)
    for i, t in enumerate(tasks):
        s.before_task(None, i, t, load_task_data(t, 16), tasks[:i])
    n_gen = {0.0: 0, 0.5: 4, 1.0: 7}[share]  # round(7 * share); at 1 all 7, and no real image
    assert s.real_per_batch(8) == {0.0: 8, 0.5: 4, 1.0: 0}[share]  # 8 - round(8 * share)
    x, y = s.replay(7, torch.Generator().manual_seed(0))
    assert x.shape == (14 + n_gen, 3, 16, 16) and x.dtype == torch.float32
    assert set(y[:7].tolist()) <= {0, 1} and set(y[7:14].tolist()) <= {2, 3}  # 7 of each earlier task
    assert set(y[14:].tolist()) <= {4, 5} and len(y[14:]) == n_gen  # then the current task's generated ones
    # the pool is what the memory draws for the class asked for
    G = s.bank.task_generator(bank_task_name(1, tasks[1]))
    z = latents(10, s.bank.cfg.z_dim, seed=derive_seed(2, "replay-pool", 1))  # the run's seed rule
    want = to_uint8(G(z, torch.tensor([0] * 5 + [1] * 5)).clamp(-1, 1))
    assert np.array_equal(s.pool._images[1].numpy(), want)
    assert s.pool._labels[1].tolist() == [2] * 5 + [3] * 5
    if share:  # the current task's pool is drawn the same way, from the task just learned
        G = s.bank.task_generator(bank_task_name(2, tasks[2]))
        want = to_uint8(G(latents(10, s.bank.cfg.z_dim, seed=derive_seed(2, "replay-pool", 2)), torch.tensor([0] * 5 + [1] * 5)).clamp(-1, 1))
        assert np.array_equal(s.pool.current[1].numpy(), want)
    else:
        assert s.pool.current is None


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_judged_pools_keep_the_draws_the_judge_is_surest_of(tmp_path, tiny_source, share):
    tasks = parse_tasks(TASKS, None)
    cfg = LifelongConfig(iters=1, batch_size=8, replay_pool=10, resolution=16, seed=2, replay_current=share,
                         replay_keep=0.5, judge_iters=2)
    lines = []
    s = GanMemoryReplay(cfg, tmp_path / "run", lines.append, gan=replay_gan_config(2, iters=2, batch_size=4),
                        source=tiny_source, progress=False)
    model = Classifier(6, resolution=16)
    for i, t in enumerate(tasks):
        s.before_task(model, i, t, load_task_data(t, 16), tasks[:i])
    # task 2's pool, set while its real images are at hand even at share 0: 10 of 20 draws
    name, images, labels = s.pool.current
    assert name == bank_task_name(2, tasks[2]) and labels.tolist() == [4] * 5 + [5] * 5
    G = s.bank.task_generator(name)
    draws = to_uint8(G(latents(20, s.bank.cfg.z_dim, seed=derive_seed(2, "replay-pool", 2)), torch.tensor([0] * 10 + [1] * 10)).clamp(-1, 1))
    draw_labels = np.array([4] * 10 + [5] * 10)
    data = load_task_data(tasks[2], 16)
    judge = train_judge(data.train_images, data.train_labels, 6, cfg, 2)
    kept = keep_most_confident(class_confidence(judge, draws, draw_labels), draw_labels, 5)
    assert kept.tolist() == s.kept[2].tolist() and np.array_equal(images.numpy(), draws[kept])
    assert sorted(s.state_dict()) == ["kept.0", "kept.1", "kept.2"]
    assert s.pool.sizes() == {bank_task_name(0, tasks[0]): 10, bank_task_name(1, tasks[1]): 10}
    assert sum("the judge of" in line and "kept 10 of 20 draws" in line for line in lines) == 3


def test_mergan_refuses_the_replay_judge(tmp_path, tiny_source):
    from ganmemory.errors import GanMemoryError
    from ganmemory.lifelong.strategies.mergan import MerGAN
    with pytest.raises(GanMemoryError, match="the replay judge .* is for gan-memory"):
        MerGAN(LifelongConfig(resolution=16, replay_keep=0.5), tmp_path, quiet, source=tiny_source)


def test_gan_memory_reuses_a_matching_task_and_refuses_a_clash(tmp_path, tiny_source):
    tasks = parse_tasks(TASKS, None)[:1]
    cfg = LifelongConfig(iters=1, batch_size=8, replay_pool=10, resolution=16)
    args = dict(source=tiny_source, progress=False, bank=tmp_path / "bank")
    s = GanMemoryReplay(cfg, tmp_path, quiet, gan=replay_gan_config(0, iters=2, batch_size=4), **args)
    s.before_task(None, 0, tasks[0], None, [])
    path = s.bank.root / "tasks" / f"{bank_task_name(0, tasks[0])}.safetensors"
    before = path.read_bytes()
    msgs = []
    again = GanMemoryReplay(cfg, tmp_path, msgs.append, gan=replay_gan_config(0, iters=2, batch_size=4), **args)
    again.before_task(None, 0, tasks[0], None, [])
    assert path.read_bytes() == before and any("reusing" in m for m in msgs)
    other = GanMemoryReplay(cfg, tmp_path, quiet, gan=replay_gan_config(0, iters=3, batch_size=4), **args)
    from ganmemory.errors import GanMemoryError
    with pytest.raises(GanMemoryError, match=r"already holds task 't0-mnist-0-1' learned with other data or "
                                              r"options \(--iters 2 \(now 3\)\); give another --memory folder"):
        other.before_task(None, 0, tasks[0], None, [])
    assert path.read_bytes() == before


def test_mergan_grows_class_rows_and_keeps_the_old_ones(tiny_cfg):
    G, D = Generator(tiny_cfg, n_classes=2), Discriminator(tiny_cfg, n_classes=2)
    with torch.no_grad():
        G.class_bias.weight.normal_()
    start = (torch.randn(D.fc.weight.shape[1]), torch.randn(()))
    G3, D3 = grow_generator(G, 3), grow_discriminator(D, 3, start)
    z = latents(4, tiny_cfg.z_dim, 0)
    for c in (0, 1):
        assert torch.equal(G3(z, torch.full((4,), c)), G(z, torch.full((4,), c)))
    assert torch.equal(G3.class_bias.weight[:, 2], torch.zeros(G3.class_bias.weight.shape[0]))
    assert torch.equal(D3.fc.weight[:2], D.fc.weight) and torch.equal(D3.fc.weight[2], start[0])
    assert D3.fc.bias[2] == start[1]


def test_mergan_run_completes(tmp_path, tiny_source):
    res = tiny_run(tmp_path, tiny_source, "mergan", tasks="mnist:0,1;mnist:2,3")
    assert len(res["accuracy_matrix"]) == 2 and res["complete"]
    assert res["strategy_summary"]["pool"] == {"mergan-0": 12}


@pytest.mark.parametrize("strategy,keep", [("gan-memory", 1.0), ("gan-memory", 0.5), ("mergan", 1.0)])
def test_a_resumed_generative_run_computes_what_the_whole_run_does(tmp_path, tiny_source, resumed_equals_whole,
                                                                   strategy, keep):
    cfg = LifelongConfig(iters=3, batch_size=8, replay_pool=12, resolution=16, seed=1, replay_keep=keep,
                         judge_iters=2)
    tasks = parse_tasks(TASKS, None)

    def run(out, resume=False, log=quiet):
        return run_lifelong(tasks, strategy, cfg, out, progress=False, log=log, resume=resume,
                            strategy_kwargs={"gan": replay_gan_config(seed=1, iters=2, batch_size=4),
                                             "source": tiny_source, "progress": False})

    lines = resumed_equals_whole(run)
    assert sum(line.startswith("resuming ") for line in lines) == 1
    if strategy == "gan-memory":  # the finished tasks are found in the bank, not learned again
        assert [line for line in lines if "learned" in line] == [] and sum("reusing" in line for line in lines) == 3
        # the judges of the finished tasks are not trained again: their kept draws are in the checkpoint
        assert sum("the judge of" in line for line in lines) == (1 if keep < 1 else 0)
    else:  # only the third task's GAN trains
        assert sum(line.startswith("mergan: GAN trained") for line in lines) == 1
