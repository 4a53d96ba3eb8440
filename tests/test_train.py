import copy
import json
import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from ganmemory.data import ImageSet
from ganmemory.errors import GanMemoryError, TrainingDiverged
from ganmemory.nets import Discriminator, Generator, NetConfig
from ganmemory.nets.modulated import MODULATED, ModulatedConv2d, kernels_built_once
from ganmemory.store import read_meta
from ganmemory.train import GANTrainer, TrainConfig, ema_update, r1_penalty
from ganmemory.train.loop import fit, load_checkpoint
from ganmemory.train.losses import d_loss_nonsaturating, g_loss_nonsaturating


class QuadD(nn.Module):
    """D(x) = sum_j w_j x_j^2 per sample: grad = 2 w x, known in closed form."""

    def __init__(self, dim):
        super().__init__()
        self.w = nn.Parameter(torch.randn(dim))

    def forward(self, x, y=None):
        return (self.w * x.flatten(1) ** 2).sum(1)


def test_r1_equals_its_formula():
    D = QuadD(12)
    x = torch.randn(5, 3, 2, 2, requires_grad=True)
    r1 = r1_penalty(D(x), x)
    want = ((2 * D.w * x.detach().flatten(1)) ** 2).sum(1).mean()
    assert torch.allclose(r1, want, rtol=1e-6)
    r1.backward()  # differentiable w.r.t. D's weights (create_graph)
    assert D.w.grad is not None and D.w.grad.abs().sum() > 0


def test_nonsaturating_losses_are_bce():
    r, f = torch.randn(7), torch.randn(7)
    lr, lf = d_loss_nonsaturating(r, f)
    bce = nn.functional.binary_cross_entropy_with_logits
    assert torch.allclose(lr, bce(r, torch.ones(7)))
    assert torch.allclose(lf, bce(f, torch.zeros(7)))
    assert torch.allclose(g_loss_nonsaturating(f), bce(f, torch.ones(7)))


def test_ema_update_formula():
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    before = {k: v.clone() for k, v in a.state_dict().items()}
    ema_update(a, b, 0.9)
    for k, v in a.state_dict().items():
        assert torch.allclose(v, 0.9 * before[k] + 0.1 * b.state_dict()[k])


def _images(n=40, res=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    imgs = torch.randint(0, 256, (n, res, res, 3), generator=g, dtype=torch.uint8).numpy()
    return ImageSet("synthetic", imgs, torch.zeros(n, dtype=torch.long).numpy(), ("x",))


def _trainer(cfg_net, iters, **kw):
    torch.manual_seed(1)
    G, D = Generator(cfg_net), Discriminator(cfg_net)
    return GANTrainer(G, D, TrainConfig(iters=iters, batch_size=4, seed=3, log_every=1, sample_every=0,
                                        ckpt_every=0, **kw))


def test_resumed_run_takes_the_same_next_step(tiny_cfg, tmp_path):
    data = _images()
    straight = _trainer(tiny_cfg, 5)
    fit(straight, data, tmp_path / "a", ckpt_meta={}, progress=False)

    first = _trainer(tiny_cfg, 3)
    fit(first, data, tmp_path / "b", ckpt_meta={}, progress=False)
    resumed = _trainer(tiny_cfg, 5)
    torch.manual_seed(999)  # a different global RNG state must not matter
    load_checkpoint(resumed, tmp_path / "b" / "checkpoint.safetensors")
    assert resumed.iteration == 3
    fit(resumed, data, tmp_path / "c", ckpt_meta={}, progress=False)

    for name in ("G", "G_ema", "D"):
        a, b = getattr(straight, name).state_dict(), getattr(resumed, name).state_dict()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{name}.{k} differs after resume"
    sa, sb = straight.opt_g.state_dict()["state"], resumed.opt_g.state_dict()["state"]
    for i in sa:
        assert torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"])


def test_only_given_params_change(tiny_cfg):
    data = _images()
    G, D = Generator(tiny_cfg), Discriminator(tiny_cfg)
    frozen = copy.deepcopy(G.state_dict())
    tr = GANTrainer(G, D, TrainConfig(iters=2, batch_size=4), g_params=[G.conv_img.weight])
    imgs = torch.from_numpy(data.images[:4])
    tr.train_step(imgs, torch.zeros(4, dtype=torch.long))
    for k, v in G.state_dict().items():
        assert torch.equal(v, frozen[k]) == (k != "conv_img.weight"), k


def test_lazy_r1_weights_every_nth_step(tiny_cfg):
    tr = _trainer(tiny_cfg, 4, r1_every=2)
    imgs = torch.from_numpy(_images().images[:4])
    r1s = [tr.train_step(imgs, torch.zeros(4, dtype=torch.long))["r1"] for _ in range(4)]
    assert r1s[0] > 0 and r1s[2] > 0 and r1s[1] == 0 and r1s[3] == 0


def test_log_carries_the_latest_lazy_r1(tiny_cfg, tmp_path):
    # with R1 every 4th step, the logged steps 2 and 4 compute none; the log must not say 0
    tr = _trainer(tiny_cfg, 4, r1_every=4)
    tr.cfg = TrainConfig(iters=4, batch_size=4, log_every=2, sample_every=0, ckpt_every=0, r1_every=4)
    fit(tr, _images(), tmp_path, ckpt_meta={}, progress=False)
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records] == [2, 4]
    assert all(r["r1"] > 0 for r in records)


def test_train_log_and_samples_written(tiny_cfg, tmp_path):
    tr = _trainer(tiny_cfg, 4)
    tr.cfg = TrainConfig(iters=4, batch_size=4, log_every=2, sample_every=2, ckpt_every=2)
    fit(tr, _images(), tmp_path, ckpt_meta={}, progress=False)
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert len(lines) == 2 and '"iteration": 4' in lines[-1]
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["iter_0000002.png", "iter_0000004.png"]
    assert (tmp_path / "checkpoint.safetensors").exists()


def _memory_pair(cfg_net, seed=0):
    """A modulated G / D over a random source, every task parameter nudged off its start."""
    torch.manual_seed(seed)
    G_src, D_src = Generator(cfg_net), Discriminator(cfg_net)
    G, D = Generator(cfg_net, modulated=True), Discriminator(cfg_net, modulated=True)
    G.load_source(G_src.state_dict())
    D.load_source(D_src.state_dict())
    with torch.no_grad():
        for p in G.task_parameters() + D.task_parameters():
            p.add_(0.01 * torch.randn_like(p))
    return G, D


def test_a_1x1_input_meets_only_the_centre_tap():
    conv = ModulatedConv2d(6, 5)
    conv.init_from(torch.randn(5, 6, 3, 3), torch.randn(5))
    x = torch.randn(4, 6, 1, 1)
    y = conv(x)
    w, b = conv.kernel()
    want = torch.nn.functional.conv2d(x, w, b, padding=1)
    assert y.shape == want.shape == (4, 5, 1, 1)
    assert torch.allclose(y, want, atol=1e-6)
    (g_fast,) = torch.autograd.grad(y.square().sum(), conv.gamma)
    w, b = conv.kernel()
    (g_conv,) = torch.autograd.grad(torch.nn.functional.conv2d(x, w, b, padding=1).square().sum(), conv.gamma)
    assert torch.allclose(g_fast, g_conv, atol=1e-6)


def test_kernels_built_once_give_the_same_gradients_and_are_cleared():
    cfg = NetConfig(resolution=64, nf=2)  # 64 px: the 1x1 first block and the fc are in play
    G, D = _memory_pair(cfg)
    z = torch.randn(3, cfg.z_dim)
    loss = D(G(z)).sum() + D(G(z * 0.5)).sum()
    eager = torch.autograd.grad(loss, G.task_parameters())
    with kernels_built_once(G, D):
        layer = G.resnet_0_0.conv_0
        assert layer.kernel() is layer.kernel()  # built once, reused by every call
        with torch.no_grad():
            G(z)  # a no-grad call in between must not spoil the later backward
        loss = D(G(z)).sum() + D(G(z * 0.5)).sum()
        once = torch.autograd.grad(loss, G.task_parameters())
    assert all(m.built is None for m in list(G.modules()) + list(D.modules()) if isinstance(m, MODULATED))
    for a, b in zip(eager, once, strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


def test_fast_step_matches_the_eager_reference_step():
    """GANTrainer's speed options (kernels built once per step, fused Adam) change no maths:
    one step lands on the same parameters to float rounding, and three steps report the
    same losses. (Adam with beta1 = 0 turns rounding noise in near-zero gradients into
    lr-sized steps, so later parameters are compared through the losses.)"""
    cfg = NetConfig(resolution=64, nf=2)
    imgs = torch.from_numpy(_images(n=4, res=64).images)
    trainers = {}
    for fast in (False, True):
        G, D = _memory_pair(cfg)
        trainers[fast] = GANTrainer(G, D, TrainConfig(batch_size=4, seed=5), g_params=G.task_parameters(),
                                    d_params=D.task_parameters(), fast=fast)
    stats = {fast: [tr.train_step(imgs, torch.zeros(4, dtype=torch.long))] for fast, tr in trainers.items()}
    for name in ("G", "D", "G_ema"):
        a = getattr(trainers[False], name).task_state_dict()
        b = getattr(trainers[True], name).task_state_dict()
        for k in a:
            assert torch.allclose(a[k], b[k], atol=1e-6, rtol=0), f"{name}.{k} differs after one step"
    for fast, tr in trainers.items():
        stats[fast] += [tr.train_step(imgs, torch.zeros(4, dtype=torch.long)) for _ in range(2)]
    for s_eager, s_fast in zip(stats[False], stats[True], strict=True):
        for k in s_eager:
            assert abs(s_eager[k] - s_fast[k]) <= 1e-4 * max(1.0, abs(s_eager[k])), k


def test_a_diverged_step_stops_training_before_it_is_logged_or_checkpointed(tiny_cfg, tmp_path, diverge_before):
    diverge_before(3)
    tr = _trainer(tiny_cfg, 6)
    tr.cfg = TrainConfig(iters=6, batch_size=4, log_every=1, sample_every=0, ckpt_every=1)
    with pytest.raises(TrainingDiverged, match="diverged at iteration 3") as err:
        fit(tr, _images(), tmp_path, ckpt_meta={}, progress=False)
    assert err.value.iteration == 3 and not math.isfinite(err.value.stats["d_loss_real"])
    assert [json.loads(ln)["iteration"] for ln in (tmp_path / "log.jsonl").read_text().splitlines()] == [1, 2]
    assert read_meta(tmp_path / "checkpoint.safetensors")["iteration"] == 2


def test_ema_ramps_up_with_the_run():
    from ganmemory.train.ema import ema_beta_at, half_life_from_beta
    # without ramp-up: GP-GAN's fixed decay at every step
    assert ema_beta_at(1, 0.999, 0.0) == 0.999 and ema_beta_at(10_000, 0.999, 0.0) == 0.999
    # with it: the half-life at step t is rampup * t, capped by that of beta
    for t in (1, 10, 100, 1000):
        assert abs(half_life_from_beta(ema_beta_at(t, 0.999, 0.05)) - min(0.05 * t, half_life_from_beta(0.999))) < 1e-6
    assert ema_beta_at(100_000, 0.999, 0.05) == pytest.approx(0.999)
    # after 500 steps a ramped EMA holds almost nothing of the start; a fixed 0.999 holds 61 %
    kept = lambda ramp: math.prod(ema_beta_at(t, 0.999, ramp) for t in range(1, 501))
    assert kept(0.0) == pytest.approx(0.999 ** 500) and kept(0.05) < 1e-6


def test_the_trainer_uses_the_ramped_ema(tiny_cfg):
    tr = _trainer(tiny_cfg, 1, ema_beta=0.999, ema_rampup=0.05)
    start = {k: v.clone() for k, v in tr.G_ema.state_dict().items()}
    imgs = torch.randint(0, 256, (4, 16, 16, 3), dtype=torch.uint8)
    tr.train_step(imgs, torch.zeros(4, dtype=torch.long))
    from ganmemory.train.ema import ema_beta_at
    beta = ema_beta_at(1, 0.999, 0.05)  # half-life 0.05 steps: the EMA all but copies G
    for k, v in tr.G_ema.state_dict().items():
        assert torch.allclose(v, beta * start[k] + (1 - beta) * tr.G.state_dict()[k], atol=1e-6)


def test_lr_decay_schedule():
    assert [TrainConfig(iters=10).lr_scale(t) for t in (0, 9)] == [1.0, 1.0]  # the default: constant
    cfg = TrainConfig(iters=10, lr_decay=0.4)  # the last 4 of 10 steps fall linearly towards 0
    assert [cfg.lr_scale(t) for t in range(10)] == pytest.approx([1] * 7 + [0.75, 0.5, 0.25])
    assert [TrainConfig(iters=4, lr_decay=1.0).lr_scale(t) for t in range(4)] == pytest.approx([1, 0.75, 0.5, 0.25])
    for bad in (-0.1, 1.5):
        with pytest.raises(GanMemoryError, match="--lr-decay must be in"):
            TrainConfig(lr_decay=bad)


def test_the_trainer_steps_at_the_scheduled_rates_and_resumes_on_them(tiny_cfg, tmp_path):
    from dataclasses import replace
    data = _images()
    straight = _trainer(tiny_cfg, 6, lr_decay=0.5)
    rates, step = [], straight.train_step

    def recording(*a):
        out = step(*a)
        rates.append((straight.opt_g.param_groups[0]["lr"], straight.opt_d.param_groups[0]["lr"]))
        return out
    straight.train_step = recording
    fit(straight, data, tmp_path / "a", ckpt_meta={}, progress=False)
    assert rates == [pytest.approx((5e-4 * s, 5e-4 * s)) for s in (1, 1, 1, 1, 2 / 3, 1 / 3)]

    # a run stopped after 4 steps and resumed ends at the same parameters, to the bit
    first = _trainer(tiny_cfg, 6, lr_decay=0.5)
    first.cfg = replace(first.cfg, ckpt_every=1)
    step_first = first.train_step

    def interrupted(*a):
        if first.iteration == 4:
            raise KeyboardInterrupt
        return step_first(*a)
    first.train_step = interrupted
    with pytest.raises(KeyboardInterrupt):
        fit(first, data, tmp_path / "b", ckpt_meta={}, progress=False)
    resumed = _trainer(tiny_cfg, 6, lr_decay=0.5)
    load_checkpoint(resumed, tmp_path / "b" / "checkpoint.safetensors")
    assert resumed.iteration == 4
    fit(resumed, data, tmp_path / "c", ckpt_meta={}, progress=False)
    for name in ("G", "G_ema", "D"):
        a, b = getattr(straight, name).state_dict(), getattr(resumed, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    # and the decay changed the result: the same run at constant rates ends elsewhere
    constant = _trainer(tiny_cfg, 6)
    fit(constant, data, tmp_path / "d", ckpt_meta={}, progress=False)
    assert not torch.equal(constant.G.state_dict()["conv_img.weight"], straight.G.state_dict()["conv_img.weight"])


def test_presets_and_their_options():
    paper = TrainConfig.preset("paper")
    assert paper.lr_decay == 0.0
    assert (paper.lr_g, paper.lr_d, paper.ema_beta, paper.ema_rampup, paper.r1_gamma, paper.r1_every,
            paper.batch_size) == (1e-4, 1e-4, 0.999, 0.0, 10.0, 1, 16)
    assert TrainConfig.preset("tuned") == TrainConfig()
    tuned = TrainConfig()  # the recipe BENCHMARKS.md measured as the default
    assert (tuned.lr_g, tuned.lr_d, tuned.ema_beta, tuned.ema_rampup, tuned.r1_gamma, tuned.r1_every,
            tuned.batch_size) == (5e-4, 5e-4, 0.999, 0.01, 1.0, 4, 16)
    assert TrainConfig.preset("paper", lr_g=3e-4).lr_g == 3e-4
    # the tuned recipe gives a class-conditional task R1 10; an explicit weight still wins
    assert TrainConfig.preset("tuned", conditional=True) == TrainConfig(conditional=True, r1_gamma=10.0,
                                                                        mode_seeking=0.1)
    assert TrainConfig.preset("tuned", conditional=True, r1_gamma=2.0).r1_gamma == 2.0
    assert TrainConfig.preset("tuned", conditional=True, mode_seeking=0.0).mode_seeking == 0.0
    assert TrainConfig.preset("tuned").mode_seeking == 0.0 == TrainConfig.preset("paper", conditional=True).mode_seeking
    assert TrainConfig.preset("tuned", conditional=False).r1_gamma == 1.0
    assert TrainConfig.preset("paper", conditional=True) == replace(paper, conditional=True)
    with pytest.raises(GanMemoryError, match="unknown preset 'fast'"):
        TrainConfig.preset("fast")
    # a config stored before the ramp-up and layouts existed reads back as what it ran with
    old = {k: v for k, v in TrainConfig.preset("paper").to_dict().items()
           if k not in ("ema_rampup", "layout", "lr_decay", "mode_seeking")}
    assert TrainConfig.from_dict(old) == TrainConfig.preset("paper")
    assert TrainConfig.preset("paper").resumes(old) and not TrainConfig().resumes(old)


def test_mode_seeking_term_is_its_formula_and_pushes_pairs_apart():
    from ganmemory.train.losses import mode_seeking_penalty
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, 4, 4, generator=g, requires_grad=True)
    z = torch.randn(6, 5, generator=g)
    got = mode_seeking_penalty(x, z)
    d_x = (x[:3] - x[3:]).abs().mean()
    d_z = (z[:3] - z[3:]).abs().mean()
    assert torch.allclose(got, 1 / (d_x / d_z + 1e-5))
    got.backward()
    with torch.no_grad():  # a small step against the gradient moves each pair apart and lowers the term
        moved = x - 1e-2 * x.grad / x.grad.abs().max()
    assert (moved[:3] - moved[3:]).abs().mean() > d_x
    assert mode_seeking_penalty(moved, z) < got
    # an odd batch leaves its last row unpaired; bf16 images are scored in float32
    assert torch.allclose(mode_seeking_penalty(torch.cat([x.detach(), x[:1].detach()]), torch.cat([z, z[:1]])),
                          got.detach())
    assert mode_seeking_penalty(x.detach().bfloat16(), z).dtype == torch.float32
    with pytest.raises(ValueError, match="at least 2"):
        mode_seeking_penalty(x[:1], z[:1])


def test_mode_seeking_term_over_two_ranks_is_the_global_batchs_term_and_gradient():
    from ganmemory.train.losses import mode_seeking_penalty
    g = torch.Generator().manual_seed(0)
    base, z = torch.randn(8, 3, 4, 4, generator=g), torch.randn(8, 5, generator=g)
    theta = torch.randn(3, 1, 1, generator=g).requires_grad_(True)  # a parameter both ranks share
    whole = mode_seeking_penalty(theta * base, z)  # pairs (i, i + 4)
    (want,) = torch.autograd.grad(whole, theta)
    ranks = [torch.tensor([0, 1, 4, 5]), torch.tensor([2, 3, 6, 7])]  # whole pairs per rank, as train_step slices

    def local_means(r):
        x = (theta * base[ranks[r]]).detach()
        return [(x[:2] - x[2:]).abs().mean(), (z[ranks[r]][:2] - z[ranks[r]][2:]).abs().mean()]

    values, grads = [], []
    for r in (0, 1):
        others = local_means(1 - r)  # what the other rank contributes, in call order: d_x, then d_z
        term = mode_seeking_penalty(theta * base[ranks[r]], z[ranks[r]],
                                    mean_over_ranks=lambda t, o=others: (t + o.pop(0)) / 2)
        values.append(term.detach())
        grads.append(torch.autograd.grad(term, theta)[0])
    assert torch.allclose(values[0], whole) and torch.allclose(values[1], whole)
    # the trainer averages the ranks' gradients: that is the global term's gradient
    assert torch.allclose((grads[0] + grads[1]) / 2, want, rtol=1e-5, atol=1e-7)
    assert not torch.allclose(grads[0], want, rtol=1e-3)  # one rank alone would not be


def test_mode_seeking_pairs_the_generator_step_under_one_label(tiny_cfg):
    net = replace(tiny_cfg, nlabels=5, embed_dim=4)
    images = torch.randint(0, 256, (8, 16, 16, 3), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])

    def g_step_labels(weight):
        torch.manual_seed(1)
        tr = GANTrainer(Generator(net), Discriminator(net),
                        TrainConfig(iters=1, batch_size=8, seed=3, conditional=True, mode_seeking=weight))
        seen = []
        real_g_step = tr.g_step
        tr.g_step = lambda z, y: (seen.append(y.clone()), real_g_step(z, y))[1]
        stats = tr.train_step(images, labels)
        return seen[0], labels, stats, tr

    y, labels, stats, tr = g_step_labels(0.5)
    assert torch.equal(y, torch.cat([labels[:4], labels[:4]]))  # row i and row i + 4: one label
    assert math.isfinite(stats["g_loss"])
    y0, _, stats0, tr0 = g_step_labels(0.0)
    assert torch.equal(y0, labels)  # without the term the G step takes the batch's labels as they are
    assert stats["mode_seeking"] > 0 and "mode_seeking" not in stats0  # logged beside the GAN loss
    assert not torch.equal(tr.G.state_dict()["conv_img.weight"], tr0.G.state_dict()["conv_img.weight"])
    with pytest.raises(GanMemoryError, match="--mode-seeking must be >= 0"):
        TrainConfig(mode_seeking=-0.1)
    with pytest.raises(GanMemoryError, match="it needs --batch 2 or more, got 1"):
        TrainConfig(mode_seeking=0.1, batch_size=1)
    TrainConfig(mode_seeking=0.0, batch_size=1)  # without the term a batch of one is fine
    TrainConfig(mode_seeking=0.1, batch_size=5).check_divisible(1)  # one process leaves the odd row unpaired
    TrainConfig(mode_seeking=0.1, batch_size=4).check_divisible(2)  # one whole pair per process
    TrainConfig(mode_seeking=0.0, batch_size=6).check_divisible(2)
    with pytest.raises(GanMemoryError, match=r"--batch 6 must be divisible by 2 x the 2 processes while "
                                             r"--mode-seeking is on \(0.1;.*Pass --batch 8 or --mode-seeking 0"):
        TrainConfig(mode_seeking=0.1, batch_size=6).check_divisible(2)
