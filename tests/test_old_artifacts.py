"""What an older ganmemory left on disk still opens, samples and resumes as it began.

The artefacts in ``fixtures/old_54ec892`` were written by commit 54ec892, the last before the
sha256 seed rule (``fixtures/make_old_artifacts.py`` says how). Each test works on a copy.
Bit-identical where the machine is the one that wrote them; the tolerances below only absorb
another processor's rounding (a different seed rule moves these numbers far more).
"""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ganmemory.lifelong.config import LifelongConfig
from ganmemory.lifelong.runner import run_lifelong
from ganmemory.lifelong.strategies.generative import replay_gan_config
from ganmemory.lifelong.tasks import parse_tasks
from ganmemory.memory import MemoryBank
from ganmemory.store import unprefixed
from ganmemory.train import TrainConfig

OLD = Path(__file__).parent / "fixtures" / "old_54ec892"
# as make_old_artifacts.py, with the R1 weight, interval and EMA ramp-up that were the defaults then
LEARN = dict(iters=4, batch_size=4, sample_every=0, ckpt_every=2, log_every=1, r1_gamma=10.0, ema_rampup=0.05,
             r1_every=1)
LIFELONG = dict(iters=3, batch_size=8, replay_pool=12, resolution=16, seed=1, replay_keep=0.5, judge_iters=2)


def quiet(*_):
    pass


@pytest.fixture
def old(tmp_path, monkeypatch):
    shutil.copytree(OLD, tmp_path / "old")
    monkeypatch.chdir(tmp_path / "old")  # the stored data spec is "data", relative to it
    return tmp_path / "old"


def test_an_old_bank_opens_samples_and_takes_new_tasks(old):
    bank = MemoryBank(old / "bank")
    assert [(t.name, t.error) for t in bank.task_infos()] == [("plain", None)]
    assert TrainConfig.from_dict(bank.task_meta("plain")["train"]).seeds == "legacy"
    x = bank.sample("plain", 8, seed=0)
    assert torch.allclose(x, load_file(old / "reference.safetensors")["plain"], atol=1e-5)
    before = (old / "bank" / "tasks" / "plain.safetensors").read_bytes()
    bank.learn("new", "data", TrainConfig(iters=2, batch_size=4, sample_every=0, ckpt_every=0),
               progress=False, log=quiet)
    assert (old / "bank" / "tasks" / "plain.safetensors").read_bytes() == before
    assert torch.equal(bank.sample("plain", 8, seed=0), x)
    assert bank.task_meta("new")["train"]["seeds"] == "sha256"


def test_an_old_unfinished_learn_resumes_with_the_seeds_it_began_with(old):
    bank = MemoryBank(old / "learn_cut")
    meta = bank.learn("cut", "data", TrainConfig(**LEARN), resume=True, progress=False, log=quiet)
    assert meta["iterations"] == 4 and meta["train"]["seeds"] == "legacy"
    got, want = unprefixed("G", bank.load_task("cut")[0]), load_file(old / "learn_whole.safetensors")
    assert got.keys() == want.keys()
    worst = max((got[k] - want[k]).abs().max().item() for k in want)
    assert worst < 1e-5, worst


def test_an_old_lifelong_run_resumes_with_the_seeds_it_began_with(old):
    res = run_lifelong(parse_tasks("mnist:0,1;mnist:2,3", None), "gan-memory", LifelongConfig(**LIFELONG),
                       old / "lifelong_cut", progress=False, log=quiet, resume=True,
                       strategy_kwargs={"gan": replay_gan_config(seed=1, iters=2, batch_size=4),
                                        "source": old / "source.safetensors", "progress": False})
    whole = json.loads((old / "lifelong_whole.json").read_text())
    assert res["complete"] and LifelongConfig.from_dict(res["config"]).seeds == "legacy"
    assert res["strategy_summary"]["gan"]["seeds"] == "legacy"
    for got, want in zip(res["accuracy_matrix"], whole["accuracy_matrix"], strict=True):
        assert got == pytest.approx(want, abs=0.01)
    assert res["last_loss"] == pytest.approx(whole["last_loss"], rel=1e-3)
