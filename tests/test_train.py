import copy

import torch
from torch import nn

from ganmemory.data import ImageSet
from ganmemory.nets import Discriminator, Generator
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


def test_train_log_and_samples_written(tiny_cfg, tmp_path):
    tr = _trainer(tiny_cfg, 4)
    tr.cfg = TrainConfig(iters=4, batch_size=4, log_every=2, sample_every=2, ckpt_every=2)
    fit(tr, _images(), tmp_path, ckpt_meta={}, progress=False)
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert len(lines) == 2 and '"iteration": 4' in lines[-1]
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["iter_0000002.png", "iter_0000004.png"]
    assert (tmp_path / "checkpoint.safetensors").exists()
