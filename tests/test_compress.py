import subprocess
import sys

import pytest
import torch

from ganmemory.compress import (SEARCH_STEPS, budget_floor, budget_ranks, change_lost, compress_state, expand_state,
                                 lowrank, smallest_budget, stored_parameters)
from ganmemory.errors import GanMemoryError
from ganmemory.memory import MemoryBank
from ganmemory.store import unprefixed
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


def _diag(values, n=8):
    m = torch.zeros(n, n)
    m[range(len(values)), range(len(values))] = torch.tensor(values)
    return m


def test_budget_ranks_spend_on_the_largest_share_of_a_matrix_per_parameter():
    # x's pairs hold 9/14, 4/14, 1/14 of its sum(s^2), y's a quarter each; a pair of either costs 16
    x, y = _diag([3.0, 2.0, 1.0]), _diag([1.0, 1.0, 1.0, 1.0])
    assert budget_ranks({"x": x, "y": y}, 32) == {"x": 1, "y": 1}
    assert budget_ranks({"x": x, "y": y}, 48) == {"x": 2, "y": 1}  # 4/14 beats 1/4
    assert budget_ranks({"x": x, "y": y}, 63) == {"x": 2, "y": 1}  # 15 left: no pair fits
    assert budget_ranks({"x": x, "y": y}, 64) == {"x": 2, "y": 2}  # 1/4 beats 1/14
    # shares, not norms: a matrix a thousand times larger gets the same ranks
    assert budget_ranks({"x": x, "y": 1000 * y}, 64) == {"x": 2, "y": 2}
    # rank 3 of an 8x8 matrix (48 parameters) is the last below its 64 entries, and holds all of x
    assert budget_ranks({"x": x}, 48) == {"x": 3} and budget_ranks({"x": x}, 64) == {"x": 3}  # all, for less
    # a flat 32x32 matrix: rank 15 takes 960 parameters and keeps 15/32; 64 more keep all of it
    assert budget_ranks({"z": torch.eye(32)}, 1024) == {"z": None}
    assert budget_ranks({"z": torch.eye(32)}, 1023) == {"z": 15}  # the jump does not fit: single pairs
    # z whole and x at rank 1 keep 1 + 9/14; x whole (3/14 more) leaves z at rank 15 (17/32 less)
    assert budget_ranks({"z": torch.eye(32), "x": x}, 1024 + 16) == {"z": None, "x": 1}
    with pytest.raises(GanMemoryError, match="below the 32 that rank 1 takes"):
        budget_ranks({"x": x, "y": y}, 31)


def test_a_budget_is_kept_and_the_whole_budget_reproduces_the_state():
    g = torch.Generator().manual_seed(0)
    start = {"b.conv_0.gamma": torch.rand(40, 30, generator=g) + 0.5, "b.conv_1.beta": torch.zeros(30, 30),
             "b.conv_0.dbias": torch.zeros(40)}
    state = {k: v + torch.randn(v.shape, generator=g) for k, v in start.items()}
    assert budget_floor(state) == 70 + 60 + 40
    for budget in (170, 700, 1500):
        small = compress_state(state, starts=start, budget=budget)
        assert budget - 70 < stored_parameters(small) <= budget  # less than one pair left unspent
        assert torch.equal(small["b.conv_0.dbias"], state["b.conv_0.dbias"])
    whole = stored_parameters(state)
    back = expand_state(compress_state(state, starts=start, budget=whole), starts=start)
    assert all(torch.equal(back[k], state[k]) for k in state)
    with pytest.raises(GanMemoryError, match="below the 170 this task takes at rank 1"):
        compress_state(state, starts=start, budget=169)
    with pytest.raises(ValueError):
        compress_state(state, 0.9, starts=start, budget=700)


def test_a_bank_compressed_to_a_budget_records_it_and_refuses_one_too_small(tmp_path, bank, tiny_source):
    n_g = bank.generator_param_count()[1]
    whole = bank.task_meta("a")["task_parameters"]
    floor = budget_floor(unprefixed("G", bank.load_task("a")[0]))
    budget = (floor + whole) / 2 / n_g
    out = MemoryBank.create(tmp_path / "small", tiny_source)
    (row,) = bank.compress(["a"], None, torch.float16, out, budget=budget)
    assert floor <= row["parameters_after"] <= budget * n_g < whole
    assert MemoryBank(out.root).task_meta("a")["compressed"]["budget"] == budget
    assert out.sample("a", 2, seed=0).shape[0] == 2
    with pytest.raises(GanMemoryError, match=r"task 'b' takes at least .* --budget .* is below that"):
        bank.compress(["b"], None, torch.float16, out, budget=(floor - 1) / n_g)
    with pytest.raises(GanMemoryError, match="--budget applies to per-task compression"):
        bank.compress(["b"], None, torch.float16, out, shared=True, budget=budget)
    assert out.tasks() == ["a"] and bank.task_meta("b").get("compressed") is None


def test_smallest_budget_bisects_to_the_threshold_and_never_returns_a_refused_count():
    asked = []

    def at_least(threshold):
        def ok(n):
            asked.append(n)
            return n >= threshold
        return ok

    assert smallest_budget(100, 740, at_least(400)) == 400  # the bisection lands on it: 420, 260, 340, 380, 400, 390
    assert len(asked) <= SEARCH_STEPS + 1 and asked[0] == 100
    for threshold in (101, 333, 739):
        found = smallest_budget(100, 740, at_least(threshold))
        assert threshold <= found < threshold + 640 / 2 ** SEARCH_STEPS
    asked.clear()
    assert smallest_budget(100, 740, at_least(50)) == 100 and asked == [100]  # the floor suffices: one question
    assert smallest_budget(100, 740, lambda n: False) == 740  # nothing accepted: kept whole
    assert smallest_budget(5, 6, lambda n: False) == 6
    refused = set()

    def noisy(n):  # not monotone: accepts only odd counts above 300
        ok = n > 300 and n % 2 == 1
        refused.update(() if ok else (n,))
        return ok
    assert smallest_budget(100, 740, noisy) not in refused


@pytest.fixture
def bank(tmp_path, tiny_source, image_folder):
    b = MemoryBank.create(tmp_path / "bank", tiny_source)
    b.learn("a", image_folder["a"], TrainConfig(**FAST), progress=False, log=lambda _m: None)
    b.learn("b", image_folder["b"], TrainConfig(**FAST, seed=1), progress=False, log=lambda _m: None)
    return b


@pytest.mark.parametrize("of", ["change", "matrix"])
def test_energy_one_reproduces_the_task(tmp_path, bank, tiny_source, of):
    out = MemoryBank.create(tmp_path / "small", tiny_source)
    bank.compress(["a"], 1.0, torch.float32, out, of=of)
    assert out.task_meta("a")["compressed"]["of"] == of
    assert (out.sample("a", 6, seed=4) - bank.sample("a", 6, seed=4)).abs().max() <= 1e-4


def test_the_change_is_factorised_over_a_full_rank_start():
    g = torch.Generator().manual_seed(0)
    start = {"b.conv_0.gamma": torch.rand(40, 30, generator=g) + 0.5, "b.conv_0.dbias": torch.zeros(40)}
    change = torch.randn(40, 2, generator=g) @ torch.randn(2, 30, generator=g)  # rank 2
    state = {"b.conv_0.gamma": start["b.conv_0.gamma"] + change, "b.conv_0.dbias": torch.randn(40, generator=g)}
    small = compress_state(state, 0.999999, starts=start)
    assert small["b.conv_0.gamma.lowrank_a"].shape == (40, 2)  # the start costs nothing
    back = expand_state(small, starts=start)
    assert torch.allclose(back["b.conv_0.gamma"], state["b.conv_0.gamma"], atol=1e-5)
    assert torch.equal(back["b.conv_0.dbias"], state["b.conv_0.dbias"])
    # the matrix itself is full rank: the same energy keeps (nearly) every pair
    assert compress_state(state, 0.999999)["b.conv_0.gamma"].shape == (40, 30)


def test_a_change_cut_loses_at_most_the_energy_left_out(tmp_path, bank, tiny_source):
    start = bank.task_start()
    full = bank.load_task("a")[0]
    for of in ("change", "matrix"):
        out = MemoryBank.create(tmp_path / of, tiny_source)
        bank.compress(["a"], 0.5, torch.float32, out, of=of)
        lost = change_lost(unprefixed("G", full), unprefixed("G", out.load_task("a")[0]), start)
        if of == "change":
            assert 0 < lost <= 0.5 * (1 + 1e-5)
        else:  # the matrix cut also truncates the source's part of each matrix
            assert lost > 0.5


def test_a_matrix_compressed_before_of_existed_reads_as_the_matrix(tmp_path, bank, tiny_source):
    from ganmemory.store import load_artifact, save_artifact
    out = MemoryBank.create(tmp_path / "small", tiny_source)
    bank.compress(["a"], 0.5, torch.float16, out, of="matrix")
    x = out.sample("a", 4, seed=3)
    path = out._task_path("a")
    t, m = load_artifact(path)
    del m["compressed"]["of"]
    save_artifact(path, t, m)
    again = MemoryBank(out.root)
    assert "of" not in again.task_meta("a")["compressed"]
    assert torch.equal(again.sample("a", 4, seed=3), x)


def test_shared_bases_hold_one_kind(tmp_path, bank, tiny_source):
    from ganmemory.errors import GanMemoryError
    out = MemoryBank.create(tmp_path / "shared", tiny_source)
    bank.compress(["a"], 0.9, torch.float32, out, shared=True, of="matrix")
    bases = out.shared_bases()
    with pytest.raises(GanMemoryError, match="--of matrix"):
        bank.compress(["b"], 0.9, torch.float32, out, shared=True, of="change")
    assert "b" not in out.tasks() and out.shared_bases().keys() == bases.keys()
    bank.compress(["b"], 0.9, torch.float32, out, shared=True, of="matrix")
    assert out.task_meta("b")["compressed"]["of"] == "matrix"


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


def test_a_refused_compress_leaves_no_new_bank_behind(tmp_path, bank):
    def compress(out, budget):
        return subprocess.run([sys.executable, "-m", "ganmemory", "compress", "--memory", str(bank.root), "--task", "a",
                               "--out", str(out), "--budget", budget, "--no-eval"], capture_output=True, text=True)
    for out in (tmp_path / "new", tmp_path / "empty"):
        if out.name == "empty":
            out.mkdir()
        proc = compress(out, "0.001")
        assert proc.returncode == 2 and "is below that" in proc.stderr and "Traceback" not in proc.stderr
        assert (out.exists() and not any(out.iterdir())) if out.name == "empty" else not out.exists()
        assert compress(out, "100").returncode == 0  # the same --out works at once
        assert MemoryBank(out).tasks() == ["a"]


def test_compress_cli_takes_a_budget_and_list_shows_it(tmp_path, bank):
    n_g = bank.generator_param_count()[1]
    floor = budget_floor(unprefixed("G", bank.load_task("a")[0]))
    percent = f"{100 * (floor + bank.task_meta('a')['task_parameters']) / 2 / n_g:.1f}"
    proc = subprocess.run([sys.executable, "-m", "ganmemory", "compress", "--memory", str(bank.root), "--task", "a",
                           "--out", str(tmp_path / "small"), "--budget", percent, "--no-eval"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert f"each task within {percent} % of G" in proc.stdout
    assert MemoryBank(tmp_path / "small").task_meta("a")["task_parameters"] <= float(percent) / 100 * n_g
    proc = subprocess.run([sys.executable, "-m", "ganmemory", "list", "--memory", str(tmp_path / "small")],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and f"compressed (per-task of the change, budget {percent} % of G)" in proc.stdout


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


@pytest.mark.parametrize("of", ["change", "matrix"])
def test_shared_energy_one_reproduces_every_task(tmp_path, bank, tiny_source, of):
    out = MemoryBank.create(tmp_path / "shared", tiny_source)
    bank.compress(None, 1.0, torch.float32, out, shared=True, of=of)
    again = MemoryBank(out.root)
    for t in ("a", "b"):
        assert again.task_meta(t)["compressed"]["mode"] == "shared"
        assert again.task_meta(t)["compressed"]["of"] == of
        assert (again.sample(t, 6, seed=4) - bank.sample(t, 6, seed=4)).abs().max() <= 1e-4


def test_merge_refuses_tasks_over_shared_bases(tmp_path, bank, tiny_source):
    from ganmemory.errors import GanMemoryError
    out = MemoryBank.create(tmp_path / "shared", tiny_source)
    bank.compress(["a"], 0.9, torch.float32, out, shared=True)
    other = MemoryBank.create(tmp_path / "other", tiny_source)
    with pytest.raises(GanMemoryError, match="shared bases"):
        other.merge([out.root])
    assert other.tasks() == []


# ------------------------------------------------------------------ learn --lowrank


def _quiet(_m):
    pass


def test_fold_residual_keeps_the_energy_asked_and_adds_nothing_when_explained():
    from ganmemory.compress import fold_residual
    g = torch.Generator().manual_seed(0)
    u, v = torch.randn(12, 3, generator=g, dtype=torch.float64), torch.randn(9, 3, generator=g, dtype=torch.float64)
    s = torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64)
    # a task its bases explain: no residual, no new columns, its coefficients kept as they are
    u_new, v_new, coeffs = fold_residual(u, v, s, torch.zeros(12, 9, dtype=torch.float64), 0.9)
    assert u_new.shape == (12, 0) and v_new.shape == (9, 0) and torch.equal(coeffs, s)
    # a rank-2 residual at energy 1: exactly two columns, and the matrix comes back
    r = torch.randn(12, 2, generator=g, dtype=torch.float64) @ torch.randn(2, 9, generator=g, dtype=torch.float64)
    u_new, v_new, coeffs = fold_residual(u, v, s, r, 1.0)
    assert u_new.shape == (12, 2) and len(coeffs) == 5
    rebuilt = (torch.cat([u, u_new], 1) * coeffs) @ torch.cat([v, v_new], 1).T
    assert torch.allclose(rebuilt, (u * s) @ v.T + r, atol=1e-10)
    # a lower energy drops as much of R's tail as (1 - energy) of the whole change allows
    r = torch.randn(12, 9, generator=g, dtype=torch.float64)
    delta = (u * s) @ v.T + r
    u_new, v_new, coeffs = fold_residual(u, v, s, r, 0.8)
    rebuilt = (torch.cat([u, u_new], 1) * coeffs) @ torch.cat([v, v_new], 1).T
    assert ((rebuilt - delta) ** 2).sum() <= 0.2 * (delta ** 2).sum()
    assert 0 < u_new.shape[1] < 9


def test_singular_value_penalty_formula_and_period():
    from ganmemory.compress import LowRankConfig
    from ganmemory.bank.lowrank import lowrank_regulariser as _penalty
    from ganmemory.train.losses import singular_value_penalty
    s = torch.tensor([1.0, -2.0, 3.0, 0.0])
    want = sum(abs(float(x)) * (0.1 + 1 / (1 + torch.exp(torch.tensor(-10 * i / 4)).item())) for i, x in enumerate(s))
    assert abs(float(singular_value_penalty(s)) - want) < 1e-5
    assert float(singular_value_penalty(torch.zeros(0))) == 0.0
    reg = _penalty(LowRankConfig(penalty=0.5, penalty_every=10), [s])
    assert reg(3) is None and abs(float(reg(20)) - 0.5 * want) < 1e-5


def _spy_on_fold(monkeypatch, z):
    """Capture what the trained EMA generator draws just before its residuals are folded."""
    seen = {}
    original = MemoryBank._write_lowrank_task

    def spy(self, name, G_ema, *args, **kwargs):
        with torch.no_grad():
            seen[name] = G_ema.eval()(z)
        return original(self, name, G_ema, *args, **kwargs)
    monkeypatch.setattr(MemoryBank, "_write_lowrank_task", spy)
    return seen


def test_lowrank_learn_at_energy_one_stores_the_trained_generator(tmp_path, tiny_source, image_folder, monkeypatch):
    from ganmemory.compress import LowRankConfig
    from ganmemory.source import latents
    bank = MemoryBank.create(tmp_path / "bank", tiny_source)
    z = latents(6, bank.cfg.z_dim, 3)
    seen = _spy_on_fold(monkeypatch, z)
    for name, seed in (("a", 0), ("b", 1)):
        bank.learn(name, image_folder[name], TrainConfig(**FAST, seed=seed), progress=False, log=_quiet,
                   lowrank=LowRankConfig(energy=1.0))
        with torch.no_grad():
            stored = MemoryBank(bank.root).task_generator(name)(z)
        assert (stored - seen[name]).abs().max() <= 1e-4, name


def test_lowrank_tasks_grow_the_bases_and_leave_earlier_tasks_bit_identical(tmp_path, tiny_source, image_folder):
    from ganmemory.compress import SDIAG_SUFFIX, TRAINED_U, LowRankConfig
    from ganmemory.errors import GanMemoryError
    from ganmemory.nets import Generator
    bank = MemoryBank.create(tmp_path / "bank", tiny_source)
    cfg = LowRankConfig(energy=0.9, init="previous")
    bank.learn("a", image_folder["a"], TrainConfig(**FAST), progress=False, log=_quiet, lowrank=cfg)
    a_samples, a_bases = bank.sample("a", 6, seed=1), bank.shared_bases()
    meta = bank.task_meta("a")
    assert meta["compressed"]["mode"] == "lowrank-trained" and meta["compressed"]["basis_parameters_added"] > 0
    from ganmemory.store import load_artifact
    a_tensors = load_artifact(bank._task_path("a"))[0]
    # the task is charged for what it stores plus the basis columns it added
    assert meta["task_parameters"] == sum(t.numel() for t in a_tensors.values()) \
        + meta["compressed"]["basis_parameters_added"]
    key = "G.resnet_0_0.conv_0.gamma"
    k_a = a_bases[key[2:] + TRAINED_U].shape[1]
    assert a_tensors[key + SDIAG_SUFFIX].shape == (k_a,) and key not in a_tensors
    assert not any(k.startswith(("D.", "G_train.", "opt_")) for k in a_tensors)  # only what sampling needs

    # the next task starts from a's coefficients (the paper's init) over a's columns
    G = Generator(bank.cfg, modulated=True)
    G.load_source(bank.source.G.state_dict())
    factors = bank._factorise(G, cfg)
    assert torch.equal(factors[key[2:]].s.detach(), a_tensors[key + SDIAG_SUFFIX])
    G = Generator(bank.cfg, modulated=True)  # the default starts at the source: s = 0
    G.load_source(bank.source.G.state_dict())
    factors = bank._factorise(G, LowRankConfig(energy=0.9))
    assert factors[key[2:]].s.shape == (k_a,) and not factors[key[2:]].s.detach().any()
    assert not G.resnet_0_0.conv_0.gamma.requires_grad and G.resnet_0_0.conv_0.gamma_lowrank.r.requires_grad

    bank.learn("b", image_folder["b"], TrainConfig(**FAST, seed=1), progress=False, log=_quiet, lowrank=cfg)
    grown = bank.shared_bases()
    for k, v in a_bases.items():  # the bases only grow: a's prefix is untouched
        assert torch.equal(grown[k][:, : v.shape[1]], v)
    assert any(grown[k].shape[1] > v.shape[1] for k, v in a_bases.items())
    assert torch.equal(MemoryBank(bank.root).sample("a", 6, seed=1), a_samples)
    with pytest.raises(GanMemoryError, match="already compressed"):
        bank.compress(["b"], 0.9, torch.float32)
    other = MemoryBank.create(tmp_path / "other", tiny_source)
    with pytest.raises(GanMemoryError, match="shared bases"):
        other.merge([bank.root])


def test_a_factorised_task_starts_at_the_source(tiny_source):
    from ganmemory.source import Source, latents
    src = Source.load(tiny_source)
    G = Generator_modulated(src)
    z = latents(5, src.cfg.z_dim, 0)
    before = G(z)
    for m in G.modules():
        if hasattr(m, "factorise"):
            for name in ("gamma", "beta"):
                co, ci = getattr(m, name).shape
                m.factorise(name, torch.randn(co, 3), torch.randn(ci, 3), torch.zeros(3))
    G.freeze_source()
    assert torch.equal(G(z), before)


def Generator_modulated(src):
    from ganmemory.nets import Generator
    G = Generator(src.cfg, modulated=True)
    G.load_source(src.G.state_dict())
    return G


def test_interrupted_lowrank_learn_resumes_exactly(tmp_path, tiny_source, image_folder, monkeypatch):
    from ganmemory.compress import LowRankConfig
    from ganmemory.errors import GanMemoryError
    from ganmemory.train import GANTrainer
    cfg = TrainConfig(iters=4, batch_size=4, sample_every=0, ckpt_every=1, seed=2)
    low = LowRankConfig(energy=0.95, penalty_every=2)
    straight = MemoryBank.create(tmp_path / "straight", tiny_source)
    straight.learn("b", image_folder["b"], cfg, progress=False, log=_quiet, lowrank=low)

    bank = MemoryBank.create(tmp_path / "bank", tiny_source)
    step = GANTrainer.train_step

    def die_at_3(self, *args):
        if self.iteration == 3:
            raise KeyboardInterrupt
        return step(self, *args)
    monkeypatch.setattr(GANTrainer, "train_step", die_at_3)
    with pytest.raises(KeyboardInterrupt):
        bank.learn("b", image_folder["b"], cfg, progress=False, log=_quiet, lowrank=low)
    monkeypatch.setattr(GANTrainer, "train_step", step)
    with pytest.raises(GanMemoryError, match="cannot resume"):  # the low-rank options must match
        bank.learn("b", image_folder["b"], cfg, resume=True, progress=False, log=_quiet,
                   lowrank=LowRankConfig(energy=0.8, penalty_every=2))
    bank.learn("b", image_folder["b"], cfg, resume=True, progress=False, log=_quiet, lowrank=low)
    a, b = straight.load_task("b")[0], bank.load_task("b")[0]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert all(torch.equal(v, bank.shared_bases()[k]) for k, v in straight.shared_bases().items())


def test_extend_bases_takes_the_fewest_pairs_that_reach_the_energy():
    from ganmemory.compress import _projection_error, extend_bases
    g = torch.Generator().manual_seed(5)
    m = torch.randn(30, 24, generator=g, dtype=torch.float64)
    empty_u, empty_v = torch.zeros(30, 0, dtype=torch.float64), torch.zeros(24, 0, dtype=torch.float64)
    s2 = torch.linalg.svdvals(m) ** 2
    for energy in (0.3, 0.7, 0.95):
        u, v, _ = extend_bases(m, empty_u, empty_v, energy)
        r = u.shape[1]
        # from empty bases the answer is the SVD's: the smallest r whose top r values hold the energy
        assert s2[:r].sum() >= energy * s2.sum() - 1e-9 and s2[: r - 1].sum() < energy * s2.sum()
        assert _projection_error(m, u, v) <= (1 - energy + 1e-9) * float((m ** 2).sum())


def test_max_loss_stores_the_least_budget_that_passes_and_records_it(tmp_path, bank, tiny_source):
    n_g = bank.generator_param_count()[1]
    full = unprefixed("G", bank.load_task("a")[0])
    floor, whole = budget_floor(full), stored_parameters(full)
    lines = []
    loose = MemoryBank.create(tmp_path / "loose", tiny_source)
    (row,) = bank.compress(["a"], None, torch.float16, loose, eval_n=8, max_loss=100.0, log=lines.append)
    assert row["parameters_after"] == floor and int(row["budget"] * n_g) == floor  # 10,000 %: rank 1 passes
    (probe,) = [line for line in lines if "% of G: drift" in line]  # one probe, scored as the stored task is
    assert probe.startswith(f"'a' at {100 * floor / n_g:.2f} % of G: drift ")
    assert probe.endswith(f", FD-EL0 {row['fd_el0_before']:.2f} -> {row['fd_el0_after']:.2f} "
                          f"({100 * (row['fd_el0_after'] / row['fd_el0_before'] - 1):+.1f} %)")
    assert loose.task_meta("a")["compressed"]["budget"] == row["budget"]
    lines.clear()
    tight = MemoryBank.create(tmp_path / "tight", tiny_source)
    (row,) = bank.compress(["a"], None, torch.float16, tight, eval_n=8, max_loss=1e-9, log=lines.append)
    probes = [line for line in lines if "% of G: drift" in line]
    assert 1 <= len(probes) <= SEARCH_STEPS + 1 and not any("FD-EL0" in line for line in probes)
    assert row["parameters_after"] == whole  # every truncation moved its images: kept whole


class _FlatScorer:
    """An FD-EL0 that never rises, so that only the drift decides."""
    def score(self, sample, z_dim, seed=0):
        return {"value": 1.0}


def test_max_loss_refuses_a_budget_that_moves_the_images_back_to_the_source_though_fd_el0_holds(bank):
    from ganmemory.bank.lowrank import DRIFT_N
    from ganmemory.compress import is_modulation_matrix
    from ganmemory.source import latents
    from ganmemory.store import prefixed
    from ganmemory.taskfile import task_layout
    meta = bank.task_meta("a")
    starts = bank.task_start(0, task_layout(meta))
    g = torch.Generator().manual_seed(0)  # a task whose change is full rank: rank 1 keeps little of it
    full = {k: t + 0.05 * torch.randn(t.shape, generator=g) if is_modulation_matrix(k, t) else t
            for k, t in unprefixed("G", bank.load_task("a")[0]).items()}
    lines = []
    budget = bank._budget_for_loss("a", prefixed("G", full), meta, torch.float32, "change",
                                   bank.generator_param_count()[1], _FlatScorer(), 1.0, 0.1, lines.append)
    n_g = bank.generator_param_count()[1]
    z = latents(DRIFT_N, bank.cfg.z_dim, 0)
    G = bank._new_generator(0, task_layout(meta)).eval()

    def images(state):  # in the search's batches of 100, so that the sums are the same to the bit
        G.load_task_state(state)
        with torch.no_grad():
            return torch.cat([G(z[i:i + 100], None).clamp(-1, 1) for i in range(0, DRIFT_N, 100)])

    task_x = images(full)
    moved = (images(starts) - task_x).pow(2).mean().sqrt()

    def drift(params):
        return (images(expand_state(compress_state(full, None, torch.float32, starts, budget=params), starts))
                - task_x).pow(2).mean().sqrt()

    chosen, floor = int(budget * n_g), budget_floor(full)
    assert moved > 0 and chosen > floor
    assert drift(chosen) <= 0.1 * moved < drift(floor)  # the floor moved back too far; the choice did not
    refused = [line for line in lines if "FD-EL0" not in line]
    # printed to 3 decimals: a drift above 0.1 reads 0.100 or more
    assert refused and all(float(line.split("drift ")[1].split()[0]) >= 0.1 for line in refused), lines


def test_max_loss_needs_the_scores_and_a_per_task_mode(tmp_path, bank, tiny_source):
    out = MemoryBank.create(tmp_path / "small", tiny_source)
    with pytest.raises(GanMemoryError, match="cannot run with --no-eval"):
        bank.compress(["a"], None, torch.float16, out, max_loss=0.1)
    with pytest.raises(GanMemoryError, match="--max-loss applies to per-task compression"):
        bank.compress(["a"], None, torch.float16, out, shared=True, eval_n=8, max_loss=0.1)
    with pytest.raises(GanMemoryError, match="one of an energy, a budget or a largest loss"):
        bank.compress(["a"], None, torch.float16, out, budget=0.05, eval_n=8, max_loss=0.1)
    with pytest.raises(GanMemoryError, match="--max-loss must be above 0 %"):
        bank.compress(["a"], None, torch.float16, out, eval_n=8, max_loss=0.0)
    assert out.tasks() == [] and bank.task_meta("a").get("compressed") is None
    r = subprocess.run([sys.executable, "-m", "ganmemory", "compress", "--memory", str(bank.root), "--out",
                        str(tmp_path / "cli"), "--max-loss", "10", "--no-eval"], capture_output=True, text=True)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "--max-loss scores each task's FD-EL0 while it searches: it cannot run with --no-eval" in r.stderr
    assert not (tmp_path / "cli").exists()
