"""Mixed precision: bf16 autocast where the hardware has it, float32 everywhere else."""

import pytest
import torch

from ganmemory.errors import GanMemoryError
from ganmemory.memory import MemoryBank
from ganmemory.nets import Discriminator, Generator
from ganmemory.train import GANTrainer, TrainConfig
from ganmemory.train import precision as prec


def test_bf16_falls_back_to_fp32_with_one_line_where_it_would_be_emulated(monkeypatch):
    lines = []
    monkeypatch.setattr(prec, "cpu_flags", lambda: {"avx2", "fma"})
    assert prec.resolve("bf16", "cpu", lines.append) == "fp32"
    assert len(lines) == 1 and "falls back to fp32" in lines[0] and "AMX" in lines[0]
    monkeypatch.setattr(prec, "cpu_flags", lambda: {"avx2", "amx_bf16"})
    assert prec.resolve("bf16", "cpu", lines.append) == "bf16" and len(lines) == 1
    assert prec.resolve("fp32", "cpu", lines.append) == "fp32" and len(lines) == 1


CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC
flags\t\t: fpu sse avx2 avx512f avx512_bf16
"""


def test_the_cpu_name_tells_machines_of_one_model_name_apart(monkeypatch, tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(CPUINFO + "\n" + CPUINFO.replace(": 0", ": 1").replace("AMD EPYC", "second"))
    monkeypatch.setattr(prec, "CPUINFO", info)
    assert prec.cpu_name() == "AMD EPYC (family 25 model 17; AVX-512 BF16, AVX-512)"
    info.write_text(CPUINFO.replace(" avx512f avx512_bf16", ""))
    assert prec.cpu_name() == "AMD EPYC (family 25 model 17; AVX2)"
    info.write_text("model name\t: Some CPU\n")
    assert prec.cpu_name() == "Some CPU"
    assert prec.cpu_flags() == set()


def test_the_precision_is_a_checked_stored_option():
    with pytest.raises(GanMemoryError, match="option --precision must be one of auto, fp32, bf16, got 'fp16'"):
        TrainConfig(precision="fp16")
    assert TrainConfig().precision == "auto"
    stored = {k: v for k, v in TrainConfig().to_dict().items() if k != "precision"}
    assert TrainConfig.from_dict(stored).precision == "fp32"  # files from before the option ran fp32


def test_auto_is_bf16_where_native_and_not_slower_and_fp32_elsewhere(monkeypatch):
    lines = []
    monkeypatch.setattr(prec, "cpu_flags", lambda: {"avx2", "amx_bf16"})
    monkeypatch.setattr(prec, "cpu_bf16_speedup", lambda: 1.42)
    assert prec.resolve("auto", "cpu", lines.append) == "bf16"
    assert lines == ["precision auto: bf16 (a convolution probe ran bf16 at 1.42x fp32's speed on this processor; "
                     "--precision fp32 or bf16 chooses)"]
    # native bf16 that runs slower than fp32, as on a Xeon whose hypervisor hides AMX
    monkeypatch.setattr(prec, "cpu_flags", lambda: {"avx2", "avx512_bf16"})
    monkeypatch.setattr(prec, "cpu_bf16_speedup", lambda: 0.74)
    assert prec.resolve("auto", "cpu", lines.append) == "fp32" and "fp32 (a convolution probe ran bf16 at 0.74x" in lines[1]
    assert prec.resolve("bf16", "cpu", lines.append) == "bf16"  # asked for: not probed
    monkeypatch.setattr(prec, "cpu_flags", lambda: {"avx2"})
    monkeypatch.setattr(prec, "cpu_bf16_speedup", lambda: pytest.fail("probed where bf16 is not native"))
    assert prec.resolve("auto", "cpu", lines.append) == "fp32"
    assert len(lines) == 2  # no probe, no line


def test_the_probe_times_both_precisions_once_per_process(monkeypatch):
    calls = []
    real = prec._probe_step
    monkeypatch.setattr(prec, "_probe_step", lambda *a: calls.append(a[-1]) or real(*a))
    prec.cpu_bf16_speedup.cache_clear()
    try:
        state = torch.get_rng_state()
        with torch.inference_mode():  # e.g. a caller that samples: the probe still gets its gradients
            speedup = prec.cpu_bf16_speedup()
        assert prec.cpu_bf16_speedup() == speedup and 0 < speedup < float("inf")
        assert calls == [False, True] * (prec.PROBE_ROUNDS + 1)
        assert torch.equal(torch.get_rng_state(), state)
    finally:
        prec.cpu_bf16_speedup.cache_clear()


def _probe_on_rank(rank: int, world: int, init_file: str, results) -> None:
    import torch.distributed as dist

    from ganmemory.train import precision

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        precision._time_probe = lambda: 1.5 if rank == 0 else 0.8  # rank 1 measured bf16 slower
        results.put((rank, precision.cpu_bf16_speedup()))
    finally:
        dist.destroy_process_group()


def test_distributed_ranks_agree_on_the_slowest_ranks_probe(tmp_path):
    """Two gloo ranks whose probes disagree both take the smaller figure, so both resolve auto alike."""
    import torch.multiprocessing as mp

    results = mp.get_context("spawn").SimpleQueue()
    mp.spawn(_probe_on_rank, args=(2, str(tmp_path / "init"), results), nprocs=2)
    assert sorted(results.get() for _ in range(2)) == [(0, 0.8), (1, 0.8)]


def test_a_run_resumed_under_auto_keeps_the_precision_it_ran_in():
    stored = TrainConfig(precision="bf16").to_dict()
    assert TrainConfig().continuing(stored).precision == "bf16"
    assert TrainConfig().continuing({**stored, "precision": "fp32"}).precision == "fp32"
    before_the_option = {k: v for k, v in stored.items() if k != "precision"}
    assert TrainConfig().continuing(before_the_option).precision == "fp32"
    assert TrainConfig(precision="fp32").continuing(stored).precision == "fp32"  # explicit: checked, not replaced


def _steps(tiny_cfg, precision, n=3):
    torch.manual_seed(0)
    G, D = Generator(tiny_cfg), Discriminator(tiny_cfg)
    t = GANTrainer(G, D, TrainConfig(batch_size=4, precision=precision, ema_rampup=0.0))
    images = torch.randint(0, 256, (4, 16, 16, 3), dtype=torch.uint8)
    stats = [t.train_step(images, torch.zeros(4, dtype=torch.long)) for _ in range(n)]
    return t, stats


def test_bf16_steps_train_float32_parameters_close_to_fp32(tiny_cfg):
    a, _ = _steps(tiny_cfg, "fp32")
    b, stats = _steps(tiny_cfg, "bf16")
    assert all(torch.isfinite(torch.tensor(list(s.values()))).all() for s in stats)
    for net in (b.G, b.G_ema, b.D):
        assert {p.dtype for p in net.parameters()} == {torch.float32}
    assert {v.dtype for s in b.opt_g.state.values() for v in s.values() if v.ndim} == {torch.float32}
    diffs = [(p - q).abs().max().item() for p, q in zip(a.G.parameters(), b.G.parameters())]
    assert max(diffs) > 0  # autocast ran: bf16 rounding shows
    assert max(diffs) < 0.05  # and it trained the same way (lr 5e-4, 3 steps)


def test_learn_stores_the_precision_that_ran(tmp_path, tiny_source, image_folder, monkeypatch):
    bank = MemoryBank.create(tmp_path / "bank", tiny_source)
    cfg = dict(iters=2, batch_size=4, sample_every=0, ckpt_every=0, precision="bf16")
    bank.learn("a", image_folder["a"], TrainConfig(**cfg), progress=False, log=lambda _: None)
    x = bank.sample("a", 8, seed=0)
    monkeypatch.setattr(prec, "cpu_flags", lambda: set())
    lines = []
    bank.learn("b", image_folder["b"], TrainConfig(**cfg), progress=False, log=lines.append)
    assert bank.task_meta("b")["train"]["precision"] == "fp32" and any("falls back" in m for m in lines)
    monkeypatch.setattr(prec, "cpu_flags", lambda: {"avx512_bf16"})
    monkeypatch.setattr(prec, "cpu_bf16_speedup", lambda: 1.5)
    bank.learn("c", image_folder["c"], TrainConfig(**cfg), progress=False, log=lines.append)
    assert bank.task_meta("c")["train"]["precision"] == "bf16"
    auto = {**cfg, "precision": "auto"}
    bank.learn("d", image_folder["c"], TrainConfig(**auto), progress=False, log=lines.append)
    assert bank.task_meta("d")["train"]["precision"] == "bf16"
    monkeypatch.setattr(prec, "cpu_flags", lambda: set())
    bank.learn("e", image_folder["c"], TrainConfig(**auto), progress=False, log=lines.append)
    assert bank.task_meta("e")["train"]["precision"] == "fp32"
    assert sum("falls back" in m for m in lines) == 1  # auto falls back without a note
    assert sum(m.startswith("precision auto: bf16") for m in lines) == 1  # where it probed, it says so
    assert torch.equal(bank.sample("a", 8, seed=0), x)  # sampling is float32: old tasks unchanged


def test_the_trainer_resolves_auto_on_its_device(tiny_cfg, monkeypatch):
    G, D = Generator(tiny_cfg), Discriminator(tiny_cfg)
    monkeypatch.setattr(prec, "cpu_flags", lambda: {"amx_bf16"})
    monkeypatch.setattr(prec, "cpu_bf16_speedup", lambda: 1.5)
    assert GANTrainer(G, D, TrainConfig()).precision == "bf16"
    monkeypatch.setattr(prec, "cpu_bf16_speedup", lambda: 0.7)
    assert GANTrainer(G, D, TrainConfig()).precision == "fp32"
    monkeypatch.setattr(prec, "cpu_flags", lambda: set())
    assert GANTrainer(G, D, TrainConfig()).precision == "fp32"
    assert GANTrainer(G, D, TrainConfig(precision="bf16")).precision == "fp32"


@pytest.mark.parametrize("strategy", ["gan-memory", "mergan"])
def test_replay_gans_store_the_precision_they_run_in_and_a_resumed_run_keeps_it(tmp_path, tiny_source, monkeypatch,
                                                                               strategy):
    from ganmemory.lifelong.config import LifelongConfig
    from ganmemory.lifelong.strategies.gan_memory import GanMemoryReplay
    from ganmemory.lifelong.strategies.mergan import MerGAN

    cls = {"gan-memory": GanMemoryReplay, "mergan": MerGAN}[strategy]
    cfg = LifelongConfig(resolution=16)
    monkeypatch.setattr(prec, "cpu_flags", lambda: {"amx_bf16"})
    monkeypatch.setattr(prec, "cpu_bf16_speedup", lambda: 1.5)
    fresh = cls(cfg, tmp_path / "a", lambda _: None, source=tiny_source)
    assert fresh.gan.precision == "bf16" and fresh.options()["gan"]["precision"] == "bf16"
    resumed = cls(cfg, tmp_path / "b", lambda _: None, source=tiny_source)
    stored = {"gan": {k: v for k, v in resumed.options()["gan"].items() if k != "precision"}}
    resumed.continuing(stored)  # stored before the option existed: it ran fp32
    assert resumed.gan.precision == "fp32"
    explicit = cls(cfg, tmp_path / "c", lambda _: None, source=tiny_source,
                   gan=TrainConfig(conditional=True, precision="bf16"))
    explicit.continuing(stored)  # an explicit precision is compared, not replaced
    assert explicit.gan.precision == "bf16"
