import re
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from ganmemory.errors import GanMemoryError
from ganmemory.memory import MemoryBank
from ganmemory.nets import Discriminator, Generator, NetConfig, TaskLayout
from ganmemory.source import Source, latents
from ganmemory.train import TrainConfig

FAST = dict(iters=3, batch_size=4, sample_every=0, ckpt_every=0, log_every=1)


def quiet(*_):
    pass


@pytest.fixture
def bank(tmp_path, tiny_source):
    return MemoryBank.create(tmp_path / "bank", tiny_source)


def test_fresh_task_reproduces_the_source(tiny_source):
    src = Source.load(tiny_source)
    for cls, x in ((Generator, latents(8, src.cfg.z_dim, 0)), (Discriminator, torch.randn(8, 3, 16, 16))):
        plain = src.G if cls is Generator else src.D
        mod = cls(src.cfg, modulated=True)
        mod.load_source(plain.state_dict())
        assert (mod(x) - plain(x)).abs().max() <= 1e-5


def test_only_task_parameters_get_gradients(tiny_source):
    src = Source.load(tiny_source)
    G = Generator(src.cfg, modulated=True)
    G.load_source(src.G.state_dict())
    D = Discriminator(src.cfg, modulated=True)
    D.load_source(src.D.state_dict())
    D(G(latents(4, src.cfg.z_dim, 0))).sum().backward()
    task = {id(p) for p in G.task_parameters()} | {id(p) for p in D.task_parameters()}
    # the task parameters are exactly the modulation tensors and D's last Linear
    want = set()
    for net in (G, D):
        for m in net.modules():
            for attr in ("gamma", "beta", "dbias"):
                if hasattr(m, attr):
                    want.add(id(getattr(m, attr)))
    want |= {id(D.fc.weight), id(D.fc.bias)}
    assert task == want
    for net in (G, D):
        for p in net.parameters():
            assert (p.grad is not None) == (id(p) in task)
        for b in net.buffers():
            assert not b.requires_grad


def test_old_tasks_and_source_are_bit_identical_after_new_tasks(bank, image_folder):
    src_before = {k: v.clone() for k, v in bank.source.tensors().items()}
    bank.learn("a", image_folder["a"], TrainConfig(**FAST), progress=False, log=quiet)
    a_before = bank.sample("a", 8, seed=5)
    file_before = (bank.root / "tasks" / "a.safetensors").read_bytes()
    bank.learn("b", image_folder["b"], TrainConfig(**FAST, seed=1), progress=False, log=quiet)
    bank.learn("c", image_folder["c"], TrainConfig(**FAST, seed=2), progress=False, log=quiet)
    assert torch.equal(bank.sample("a", 8, seed=5), a_before)
    assert (bank.root / "tasks" / "a.safetensors").read_bytes() == file_before
    for k, v in bank.source.tensors().items():
        assert torch.equal(v, src_before[k])
    # a task really moved away from the source
    assert not torch.equal(a_before, bank.source.sample(8, seed=5))


def test_reloaded_bank_samples_identically(bank, image_folder):
    bank.learn("a", image_folder["a"], TrainConfig(**FAST), progress=False, log=quiet)
    bank.learn("b", image_folder["b"], TrainConfig(**FAST), progress=False, log=quiet)
    x = bank.sample(["a", "b"], 6, seed=3)
    again = MemoryBank(bank.root)
    assert torch.equal(again.sample(["a", "b"], 6, seed=3), x)
    assert torch.equal(again.sample("b", 6, seed=3), x[6:])


def test_batched_multi_task_sampling_equals_the_loop(bank, image_folder):
    for i, t in enumerate("abc"):
        bank.learn(t, image_folder[t], TrainConfig(**FAST, seed=i), progress=False, log=quiet)
    together = bank.sample(["a", "b", "c", "a"], 5, seed=2, batched=True)  # one grouped pass, a task twice
    assert together.shape == (20, 3, 16, 16)
    for i, t in enumerate(["a", "b", "c", "a"]):
        assert (together[5 * i:5 * (i + 1)] - bank.sample(t, 5, seed=2)).abs().max() <= 1e-5


def test_merge_equals_learning_in_one_bank(tmp_path, tiny_source, image_folder):
    one = MemoryBank.create(tmp_path / "one", tiny_source)
    one.learn("a", image_folder["a"], TrainConfig(**FAST), progress=False, log=quiet)
    one.learn("b", image_folder["b"], TrainConfig(**FAST, seed=4), progress=False, log=quiet)
    left = MemoryBank.create(tmp_path / "left", tiny_source)
    left.learn("a", image_folder["a"], TrainConfig(**FAST), progress=False, log=quiet)
    right = MemoryBank.create(tmp_path / "right", tiny_source)
    right.learn("b", image_folder["b"], TrainConfig(**FAST, seed=4), progress=False, log=quiet)
    assert left.merge([right.root]) == ["b"]
    for t in ("a", "b"):
        ta, tb = one.load_task(t)[0], left.load_task(t)[0]
        assert ta.keys() == tb.keys()
        for k in ta:
            assert torch.equal(ta[k], tb[k]), (t, k)
        assert torch.equal(one.sample(t, 4), left.sample(t, 4))


def test_merge_refuses_clash_and_other_source(tmp_path, tiny_source, tiny_cfg, image_folder, bank):
    bank.learn("a", image_folder["a"], TrainConfig(**FAST), progress=False, log=quiet)
    other = MemoryBank.create(tmp_path / "other", tiny_source)
    other.learn("a", image_folder["b"], TrainConfig(**FAST), progress=False, log=quiet)
    with pytest.raises(GanMemoryError, match="task 'a' of bank .* clashes"):
        bank.merge([other.root])
    torch.manual_seed(9)
    Source(tiny_cfg, Generator(tiny_cfg), Discriminator(tiny_cfg)).save(tmp_path / "s2.safetensors")
    foreign = MemoryBank.create(tmp_path / "foreign", tmp_path / "s2.safetensors")
    with pytest.raises(GanMemoryError, match="built on source .* cannot merge"):
        bank.merge([foreign.root])
    assert bank.tasks() == ["a"]


def test_existing_task_needs_overwrite(bank, image_folder):
    bank.learn("a", image_folder["a"], TrainConfig(**FAST), progress=False, log=quiet)
    before = bank.sample("a", 4)
    with pytest.raises(GanMemoryError, match="task 'a' already exists .* --overwrite"):
        bank.learn("a", image_folder["b"], TrainConfig(**FAST), progress=False, log=quiet)
    assert torch.equal(bank.sample("a", 4), before)
    bank.learn("a", image_folder["b"], TrainConfig(**FAST, seed=7), overwrite=True, progress=False, log=quiet)
    assert not torch.equal(bank.sample("a", 4), before)


def test_unknown_task_lists_known_ones(bank, image_folder):
    bank.learn("a", image_folder["a"], TrainConfig(**FAST), progress=False, log=quiet)
    with pytest.raises(GanMemoryError, match="unknown task 'zz' .*known tasks: a"):
        bank.sample("zz", 2)


def test_corrupted_task_is_named_and_others_still_load(bank, image_folder):
    bank.learn("a", image_folder["a"], TrainConfig(**FAST), progress=False, log=quiet)
    bank.learn("b", image_folder["b"], TrainConfig(**FAST), progress=False, log=quiet)
    path = bank.root / "tasks" / "b.safetensors"
    data = bytearray(path.read_bytes())
    path.write_bytes(bytes(data[: len(data) // 2]))  # truncated
    again = MemoryBank(bank.root)
    with pytest.raises(GanMemoryError, match="b.safetensors"):
        again.sample("b", 2)
    assert again.sample("a", 2).shape == (2, 3, 16, 16)
    infos = {t.name: t for t in again.task_infos()}
    assert infos["a"].error is None
    assert "b.safetensors" in infos["b"].error and "corrupted" in infos["b"].error


def test_bank_with_another_source_is_refused(tmp_path, bank, tiny_cfg):
    torch.manual_seed(99)
    Source(tiny_cfg, Generator(tiny_cfg), Discriminator(tiny_cfg)).save(bank.root / "source.safetensors")
    with pytest.raises(GanMemoryError, match="is not the source the bank was built on"):
        MemoryBank(bank.root)


KILL_SCRIPT = r"""
import os, sys
import safetensors.torch as st
from ganmemory.memory import MemoryBank
from ganmemory.train import TrainConfig
real_save = st.save_file
def dying_save(tensors, path, metadata=None):
    # write part of the file, then die as a SIGKILL would: no clean-up runs
    real_save(tensors, path, metadata=metadata)
    with open(path, "r+b") as fh:
        fh.truncate(os.path.getsize(path) // 3)
    os._exit(9)
import ganmemory.store as store
store.save_file = dying_save
bank = MemoryBank(sys.argv[1])
bank.learn("b", sys.argv[2], TrainConfig(iters=2, batch_size=4, sample_every=0, ckpt_every=0), progress=False)
"""


def test_learn_killed_during_a_save_leaves_the_bank_intact(bank, image_folder):
    bank.learn("a", image_folder["a"], TrainConfig(**FAST), progress=False, log=quiet)
    a_before = bank.sample("a", 4, seed=1)
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(bank.root), image_folder["b"]],
                          capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    again = MemoryBank(bank.root)
    assert again.tasks() == ["a"]
    assert torch.equal(again.sample("a", 4, seed=1), a_before)


def test_interpolation_ends_at_the_tasks(bank, image_folder):
    bank.learn("a", image_folder["a"], TrainConfig(**FAST), progress=False, log=quiet)
    bank.learn("b", image_folder["b"], TrainConfig(**FAST, seed=3), progress=False, log=quiet)
    for mode in ("whole", "blocks"):
        strip = bank.interpolate("a", "b", steps=5, n=3, seed=2, mode=mode).reshape(3, 5, 3, 16, 16)
        assert torch.allclose(strip[:, 0], bank.sample("a", 3, seed=2), atol=1e-6)
        assert torch.allclose(strip[:, -1], bank.sample("b", 3, seed=2), atol=1e-6)


def test_task_cost_at_256px_nf64_matches_the_paper():
    cfg = NetConfig(resolution=256, nf=64, output="tanh")
    with torch.device("meta"):
        G_plain, G = Generator(cfg), Generator(cfg, modulated=True)
    n_task = sum(p.numel() for p in G.task_parameters())
    n_g = sum(p.numel() for p in G_plain.parameters())
    assert abs(n_task - 10.55e6) < 0.01e6  # the paper: about 10.55 M
    assert 0.195 < n_task / n_g < 0.205  # about 20 % of G


INTERRUPT_SCRIPT = r"""
import os, sys
from ganmemory.memory import MemoryBank
from ganmemory.train import TrainConfig, GANTrainer
real_step = GANTrainer.train_step
def step_then_die(self, *a, **k):
    if self.iteration == 3:  # checkpoints were written after steps 1, 2, 3
        os._exit(9)
    return real_step(self, *a, **k)
GANTrainer.train_step = step_then_die
bank = MemoryBank(sys.argv[1])
bank.learn("b", sys.argv[2], TrainConfig(iters=5, batch_size=4, sample_every=0, ckpt_every=1), progress=False)
"""


def test_interrupted_learn_resumes_exactly(tmp_path, tiny_source, image_folder):
    cfg = TrainConfig(iters=5, batch_size=4, sample_every=0, ckpt_every=1)
    straight = MemoryBank.create(tmp_path / "straight", tiny_source)
    straight.learn("b", image_folder["b"], cfg, progress=False, log=quiet)

    bank = MemoryBank.create(tmp_path / "bank", tiny_source)
    proc = subprocess.run([sys.executable, "-c", INTERRUPT_SCRIPT, str(bank.root), image_folder["b"]],
                          capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    assert bank.tasks() == []  # no task file until the learn ends
    with pytest.raises(GanMemoryError, match="unfinished learn .* --resume"):
        bank.learn("b", image_folder["b"], cfg, progress=False, log=quiet)
    other = replace(cfg, r1_gamma=3.0, lr_g=1e-3, lr_d=1e-3)
    with pytest.raises(GanMemoryError, match=re.escape(f"other options (--lr 0.0005 (now 0.001), --r1 1 (now 3)); "
                                                       "only --iters may change")):
        bank.learn("b", image_folder["b"], other, resume=True, progress=False, log=quiet)
    bank.learn("b", image_folder["b"], cfg, resume=True, progress=False, log=quiet)
    a, b = straight.load_task("b")[0], bank.load_task("b")[0]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert not (bank.root / "work").exists()


@pytest.fixture
def class_folder(tmp_path):
    """One folder with two class sub-folders of 16x16 images: 'dark' and 'light'."""
    import numpy as np
    from PIL import Image
    root = tmp_path / "two_classes"
    rng = np.random.default_rng(0)
    for name, lo in (("dark", 0), ("light", 160)):
        (root / name).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(lo, lo + 96, (16, 16, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    return str(root)


def test_conditional_task_starts_at_the_source_for_every_class(tiny_source):
    src = Source.load(tiny_source)
    G = Generator(src.cfg, modulated=True, n_classes=3)
    G.load_source(src.G.state_dict())
    D = Discriminator(src.cfg, modulated=True, n_classes=3)
    D.load_source(src.D.state_dict())
    z, x = latents(6, src.cfg.z_dim, 0), torch.randn(6, 3, 16, 16)
    y = torch.tensor([0, 1, 2, 2, 1, 0])
    assert (G(z, y) - src.G(z)).abs().max() <= 1e-5
    assert (D(x, y) - src.D(x)).abs().max() <= 1e-5
    assert "class_bias.weight" in dict(G.named_task_parameters())
    assert dict(D.named_task_parameters())["fc.weight"].shape[0] == 3


def test_conditional_sample_returns_the_class_asked_for(bank, class_folder):
    meta = bank.learn("dl", class_folder, TrainConfig(**FAST, conditional=True), progress=False, log=quiet)
    assert meta["n_classes"] == 2 and meta["classes"] == ["dark", "light"]
    G = bank.task_generator("dl")
    assert G.class_bias.weight.abs().max() > 0  # the class bias was trained
    z = latents(5, bank.cfg.z_dim, 4)
    for k, c in enumerate(("dark", "light")):
        x = bank.sample("dl", 5, seed=4, classes=[c])
        assert x.shape == (5, 3, 16, 16)
        assert torch.equal(x, G(z, torch.full((5,), k)).clamp(-1, 1))
    both = bank.sample("dl", 5, seed=4, classes=["dark", "light"])
    assert not torch.equal(both[:5], both[5:])  # the class changes the image
    with pytest.raises(GanMemoryError, match="no class 'cat'.*dark, light"):
        bank.sample("dl", 2, classes=["cat"])


def test_conditional_pairs_batched_over_tasks_and_classes(bank, class_folder, image_folder):
    bank.learn("dl", class_folder, TrainConfig(**FAST, conditional=True), progress=False, log=quiet)
    bank.learn("dl2", class_folder, TrainConfig(**FAST, conditional=True, seed=3), progress=False, log=quiet)
    bank.learn("plain", image_folder["a"], TrainConfig(**FAST), progress=False, log=quiet)
    pairs = [("dl", "light"), ("dl2", "dark"), ("dl", "dark")]
    x = bank.sample_pairs(pairs, 3, seed=1)
    assert x.shape == (9, 3, 16, 16)
    for i, (t, c) in enumerate(pairs):
        assert (x[3 * i:3 * (i + 1)] - bank.sample(t, 3, seed=1, classes=[c])).abs().max() <= 1e-6
    with pytest.raises(GanMemoryError, match="'plain' is not class-conditional"):
        bank.sample_pairs([("plain", "x")], 2)


def test_interpolating_conditional_tasks_draws_their_classes_in_turn(bank, class_folder):
    fast = dict(FAST, ema_beta=0.0, lr_g=1e-2)  # samples from the trained G, whose classes differ clearly
    bank.learn("dl", class_folder, TrainConfig(**fast, conditional=True), progress=False, log=quiet)
    bank.learn("dl2", class_folder, TrainConfig(**fast, conditional=True, seed=3), progress=False, log=quiet)
    in_turn, all_dark = bank.sample("dl", 4, seed=2), bank.sample("dl", 4, seed=2, classes=["dark"])
    assert (in_turn[1] - all_dark[1]).abs().max() > 1e-3  # so drawing class 0 on every row would show
    strip = bank.interpolate("dl", "dl2", steps=3, n=4, seed=2).reshape(4, 3, 3, 16, 16)  # [row, step, ...]
    ends = {0: bank.sample("dl", 4, seed=2), 2: bank.sample("dl2", 4, seed=2)}  # classes in turn per row
    for step, want in ends.items():
        assert (strip[:, step] - want).abs().max() <= 1e-6


def test_a_diverged_learn_stores_nothing_and_names_the_task(bank, image_folder, diverge_before):
    bank.learn("a", image_folder["a"], TrainConfig(**FAST), progress=False, log=quiet)
    before = bank.load_task("a")[0]
    diverge_before(3)
    cfg = TrainConfig(iters=5, batch_size=4, sample_every=0, ckpt_every=1, lr_g=3e-4, lr_d=3e-4)
    with pytest.raises(GanMemoryError, match=r"learning task 'b' diverged at iteration 3 .*nothing was stored"
                                             r".*this run: 0\.0003.*--overwrite"):
        bank.learn("b", image_folder["b"], cfg, progress=False, log=quiet)
    assert bank.tasks() == ["a"]
    after = bank.load_task("a")[0]
    assert all(torch.equal(before[k], after[k]) for k in before)


LAYOUTS = [TaskLayout(output_conv=True), TaskLayout(colour=True), TaskLayout(input_conv=True),
           TaskLayout(output_conv=True, colour=True, input_conv=True)]


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda l: ",".join(k for k, v in l.to_dict().items() if v))
def test_a_task_owning_more_starts_at_the_source(tiny_source, layout):
    src = Source.load(tiny_source)
    G = Generator(src.cfg, modulated=True, layout=layout)
    G.load_source(src.G.state_dict())
    D = Discriminator(src.cfg, modulated=True, layout=layout)
    D.load_source(src.D.state_dict())
    z, x = latents(8, src.cfg.z_dim, 0), torch.randn(8, 3, 16, 16)
    assert (G(z) - src.G(z)).abs().max() <= 1e-5 and (D(x) - src.D(x)).abs().max() <= 1e-5
    owned = {n.split(".")[0] for n, _ in G.named_task_parameters()} | \
        {n.split(".")[0] for n, _ in D.named_task_parameters()}
    assert ("conv_img" in owned) == (layout.output_conv or layout.input_conv)
    assert ("colour" in owned) == layout.colour


def test_layouts_learn_side_by_side_and_old_tasks_stay_bit_identical(bank, image_folder):
    bank.learn("a", image_folder["a"], TrainConfig(**FAST), progress=False, log=quiet)
    a_before, file_before = bank.sample("a", 6, seed=2), (bank.root / "tasks" / "a.safetensors").read_bytes()
    for i, layout in enumerate(LAYOUTS):
        bank.learn(f"l{i}", image_folder["b"], TrainConfig(**FAST, layout=layout), progress=False, log=quiet)
        assert bank.task_meta(f"l{i}")["layout"] == layout.to_dict()
        assert bank.task_meta(f"l{i}")["task_parameters"] > bank.task_meta("a")["task_parameters"] or \
            layout == TaskLayout(input_conv=True)  # D's parameters are not counted: sampling needs G only
    assert torch.equal(bank.sample("a", 6, seed=2), a_before)
    assert (bank.root / "tasks" / "a.safetensors").read_bytes() == file_before
    again = MemoryBank(bank.root)
    x = again.sample(["a", "l3"], 6, seed=2)
    assert torch.equal(x[:6], a_before) and torch.equal(x[6:], bank.sample("l3", 6, seed=2))
    again.learn("m", image_folder["c"], TrainConfig(**FAST, seed=4, layout=LAYOUTS[3]), progress=False, log=quiet)
    strip = again.interpolate("m", "l3", steps=3, n=2, seed=1, mode="blocks").reshape(2, 3, 3, 16, 16)
    assert torch.allclose(strip[:, 0], again.sample("m", 2, seed=1), atol=1e-6)
    assert torch.allclose(strip[:, -1], again.sample("l3", 2, seed=1), atol=1e-6)
