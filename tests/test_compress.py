import subprocess
import sys

import pytest
import torch

from ganmemory.compress import compress_state, expand_state, lowrank
from ganmemory.memory import MemoryBank
from ganmemory.train import TrainConfig

FAST = dict(iters=3, batch_size=4, sample_every=0, ckpt_every=0)


def test_lowrank_keeps_the_energy_asked_and_recovers_a_low_rank_matrix():
    g = torch.Generator().manual_seed(0)
    m = torch.randn(40, 3, generator=g) @ torch.randn(3, 30, generator=g)  # rank 3
    a, b = lowrank(m, 0.999999)
    assert a.shape == (40, 3) and b.shape == (30, 3)
    assert torch.allclose(a @ b.T, m, atol=1e-5)
    full = torch.randn(20, 20, generator=g)
    a, b = lowrank(full, 0.5)
    s = torch.linalg.svdvals(full.double())
    kept = (torch.linalg.svdvals((a @ b.T).double())[: a.shape[1]] ** 2).sum() / (s ** 2).sum()
    assert kept >= 0.5 and a.shape[1] < 20


@pytest.fixture
def bank(tmp_path, tiny_source, image_folder):
    b = MemoryBank.create(tmp_path / "bank", tiny_source)
    b.learn("a", image_folder["a"], TrainConfig(**FAST), progress=False, log=lambda _m: None)
    b.learn("b", image_folder["b"], TrainConfig(**FAST, seed=1), progress=False, log=lambda _m: None)
    return b


def test_energy_one_reproduces_the_task(tmp_path, bank, tiny_source):
    out = MemoryBank.create(tmp_path / "small", tiny_source)
    bank.compress(["a"], 1.0, torch.float32, out)
    assert (out.sample("a", 6, seed=4) - bank.sample("a", 6, seed=4)).abs().max() <= 1e-4


def test_compressed_bank_round_trips_and_samples(tmp_path, bank, tiny_source):
    out = MemoryBank.create(tmp_path / "small", tiny_source)
    bank.compress(None, 0.5, torch.float16, out)
    again = MemoryBank(out.root)
    assert again.tasks() == ["a", "b"]
    x = again.sample(["a", "b"], 4, seed=1)
    assert torch.equal(x, out.sample(["a", "b"], 4, seed=1))
    assert again.interpolate("a", "b", steps=3, n=2).shape == (6, 3, 16, 16)
    assert again.task_meta("a")["compressed"]["energy"] == 0.5
    assert bank.task_meta("a").get("compressed") is None  # the original is kept


def test_file_shrinks_by_the_amount_reported(bank):
    before = bank._task_path("a").stat().st_size
    (row,) = bank.compress(["a"], 0.5, torch.float16)  # in place
    assert row["bytes_before"] == before
    assert row["bytes_after"] == bank._task_path("a").stat().st_size < before
    assert row["parameters_after"] < row["parameters_before"]
    assert bank.task_meta("a")["task_parameters"] == row["parameters_after"]


def test_compress_cli_reports_and_keeps_the_original(tmp_path, bank):
    proc = subprocess.run([sys.executable, "-m", "ganmemory", "compress", "--memory", str(bank.root),
                           "--out", str(tmp_path / "small"), "--energy", "0.5", "--dtype", "fp16", "--no-eval"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "a " in proc.stdout and "->" in proc.stdout
    assert bank.task_meta("a").get("compressed") is None
    proc = subprocess.run([sys.executable, "-m", "ganmemory", "compress", "--memory", str(bank.root),
                           "--in-place", "--task", "zz", "--no-eval"], capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown task 'zz'" in proc.stderr and "Traceback" not in proc.stderr


def test_compress_vectors_stay_whole():
    state = {"fc.gamma": torch.randn(64), "resnet_0_0.conv_0.gamma": torch.randn(32, 32),
             "resnet_0_0.conv_0.dbias": torch.randn(32)}
    small = compress_state(state, 0.3)
    assert "fc.gamma" in small and "resnet_0_0.conv_0.dbias" in small
    assert "resnet_0_0.conv_0.gamma" not in small
    assert expand_state(small)["resnet_0_0.conv_0.gamma"].shape == (32, 32)


def test_shared_bases_grow_only_when_needed(tmp_path, tiny_source, image_folder):
    src = MemoryBank.create(tmp_path / "bank", tiny_source)
    for name, folder, seed in (("a", "a", 0), ("twin", "a", 0), ("b", "b", 1)):
        src.learn(name, image_folder[folder], TrainConfig(**FAST, seed=seed), progress=False, log=lambda _m: None)
    assert all(torch.equal(v, src.load_task("twin")[0][k]) for k, v in src.load_task("a")[0].items())
    out = MemoryBank.create(tmp_path / "shared", tiny_source)
    first = src.compress(["a"], 0.9, torch.float32, out, shared=True)
    bases = out.shared_bases()
    assert out.task_meta("a")["compressed"]["basis_parameters_added"] > 0
    a_samples = out.sample("a", 6, seed=2)
    twin = src.compress(["twin"], 0.9, torch.float32, out, shared=True)[0]
    assert out.task_meta("twin")["compressed"]["basis_parameters_added"] == 0  # an identical task adds no columns
    assert {k: v.shape for k, v in out.shared_bases().items()} == {k: v.shape for k, v in bases.items()}
    assert all(torch.equal(v, out.shared_bases()[k]) for k, v in bases.items())
    assert twin["parameters_after"] < first[0]["parameters_after"]
    src.compress(["b"], 1.0, torch.float32, out, shared=True)  # kept exactly: needs columns a's did not
    assert out.task_meta("b")["compressed"]["basis_parameters_added"] > 0
    assert torch.equal(MemoryBank(out.root).sample("a", 6, seed=2), a_samples)  # earlier tasks' prefixes stay valid


def test_shared_energy_one_reproduces_every_task(tmp_path, bank, tiny_source):
    out = MemoryBank.create(tmp_path / "shared", tiny_source)
    bank.compress(None, 1.0, torch.float32, out, shared=True)
    again = MemoryBank(out.root)
    for t in ("a", "b"):
        assert again.task_meta(t)["compressed"]["mode"] == "shared"
        assert (again.sample(t, 6, seed=4) - bank.sample(t, 6, seed=4)).abs().max() <= 1e-4


def test_merge_refuses_tasks_over_shared_bases(tmp_path, bank, tiny_source):
    from ganmemory.errors import GanMemoryError
    out = MemoryBank.create(tmp_path / "shared", tiny_source)
    bank.compress(["a"], 0.9, torch.float32, out, shared=True)
    other = MemoryBank.create(tmp_path / "other", tiny_source)
    with pytest.raises(GanMemoryError, match="shared bases"):
        other.merge([out.root])
    assert other.tasks() == []
