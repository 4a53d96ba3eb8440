"""The one seed rule: every draw of a run gets its own seed, and old runs keep their old draws."""

import pytest
import torch

from ganmemory.errors import GanMemoryError
from ganmemory.lifelong import training
from ganmemory.lifelong.config import LifelongConfig
from ganmemory.lifelong.runner import run_lifelong
from ganmemory.lifelong.strategies.base import Strategy
from ganmemory.lifelong.strategies.generative import replay_gan_config
from ganmemory.lifelong.tasks import parse_tasks
from ganmemory.seeds import LEGACY, derive_seed, generator
from ganmemory.train import TrainConfig
from ganmemory.train.trainer import BatchSchedule, step_generator


def test_a_seed_is_a_pure_63_bit_function_of_the_run_seed_and_the_draw():
    a = derive_seed(3, "replay-pool", 2)
    assert a == derive_seed(3, "replay-pool", 2) and 0 <= a < 2**63
    assert len({a, derive_seed(4, "replay-pool", 2), derive_seed(3, "replay-pool", 3),
                derive_seed(3, "mergan-pool", 2), derive_seed(3, "replay-pool", 2, 0)}) == 5
    assert torch.equal(torch.randn(4, generator=generator(3, "replay-pool", 2)),
                       torch.randn(4, generator=torch.Generator().manual_seed(a)))


def test_the_legacy_rule_is_the_arithmetic_older_runs_used():
    assert derive_seed(2, "mergan-pool", 3, 1, rule="legacy") == 2 * 1000 + 100 * 3 + 1
    assert derive_seed(2, "task", 4, rule="legacy") == 2 * 10_007 + 4
    old = BatchSchedule(100, 8, 5, "legacy").indices(30)  # epoch 2 of 12 steps
    perm = torch.randperm(100, generator=torch.Generator().manual_seed(5 * 1_000_003 + 2))
    assert torch.equal(old, perm[6 * 8:7 * 8])
    assert torch.equal(torch.rand(3, generator=step_generator(5, 9, "legacy")),
                       torch.rand(3, generator=torch.Generator().manual_seed(5 * 2_147_483_647 + 9 * 65_537)))


def test_bad_rules_and_names_are_refused():
    with pytest.raises(GanMemoryError, match="unknown seed rule 'nope'"):
        derive_seed(0, "task", 1, rule="nope")
    with pytest.raises(GanMemoryError, match="may not contain '/'"):
        derive_seed(0, "a/b", 1)
    with pytest.raises(GanMemoryError, match="unknown seed rule 'x'"):
        TrainConfig(seeds="x")
    with pytest.raises(GanMemoryError, match="unknown seed rule 'x'"):
        LifelongConfig(seeds="x")


def test_configs_stored_before_the_rule_read_back_as_legacy():
    stored = {k: v for k, v in TrainConfig().to_dict().items() if k != "seeds"}
    assert TrainConfig.from_dict(stored).seeds == "legacy"
    assert TrainConfig().continuing(stored).seeds == "legacy"
    assert TrainConfig().continuing(TrainConfig().to_dict()).seeds == "sha256"
    old_run = {k: v for k, v in LifelongConfig().to_dict().items() if k != "seeds"}
    assert LifelongConfig().continuing(old_run).seeds == "legacy"


def test_no_two_draws_of_a_12_task_mergan_run_share_a_seed(tmp_path, tiny_source, monkeypatch):
    """Records every named draw a real 12-task mergan run makes, then checks their seeds are
    distinct within the run and across runs of seeds 1, 2 and 3 (the README's three seeds)."""
    draws = set()
    own_seed, own_task_seed = Strategy._seed, training.task_seed

    def spy_seed(self, name, *keys, seed=None):
        draws.add((name, keys, "gan" if seed is not None else "run"))
        return own_seed(self, name, *keys, seed=seed)

    def spy_task(cfg, index):
        draws.add(("task", (index,), "run"))
        return own_task_seed(cfg, index)

    monkeypatch.setattr(Strategy, "_seed", spy_seed)
    monkeypatch.setattr(training, "task_seed", spy_task)
    tasks = parse_tasks("split:mnist:10;split:fashion-mnist:2", None)
    assert len(tasks) == 12
    cfg = LifelongConfig(iters=1, batch_size=4, replay_pool=4, resolution=16, seed=1)
    res = run_lifelong(tasks, "mergan", cfg, tmp_path / "run", progress=False, log=lambda *_: None,
                       strategy_kwargs={"gan": replay_gan_config(seed=1, iters=1, batch_size=4),
                                        "source": tiny_source, "progress": False})
    assert res["complete"]
    names = {d[0] for d in draws}
    assert names == {"task", "mergan-pool", "mergan-gan"}
    assert sum(d[0] == "mergan-pool" for d in draws) == sum(range(12)) + 12  # every old task, then the new one

    def seeds(seed, rule):
        return [derive_seed(seed, name, *keys, rule=rule) for name, keys, _ in draws]

    for seed in (0, 1, 2, 3):
        assert len(set(seeds(seed, "sha256"))) == len(draws)
    across = seeds(1, "sha256") + seeds(2, "sha256") + seeds(3, "sha256")
    assert len(set(across)) == len(across)
    # the check can fail: the arithmetic older runs used repeats seeds in such a run
    assert len(set(seeds(0, "legacy"))) < len(draws)
    legacy_across = seeds(1, "legacy") + seeds(2, "legacy")
    assert len(set(legacy_across)) < len(legacy_across)
    assert set(LEGACY) >= names
