import pytest
import torch

from ganmemory.errors import GanMemoryError
from ganmemory.nets import Discriminator, Generator, NetConfig


@pytest.mark.parametrize("res", [32, 64, 128, 256])
def test_output_shapes(res):
    cfg = NetConfig(resolution=res, nf=2 if res >= 128 else 4, z_dim=16)
    G, D = Generator(cfg), Discriminator(cfg)
    x = G(torch.randn(3, 16))
    assert x.shape == (3, 3, res, res)
    assert D(x).shape == (3,)


def _resnet4_layout(nf: int, z: int, embed: int, nlabels: int, s0: int) -> dict[str, tuple]:
    """GP-GAN resnet4's parameter names and shapes, written out from its published layout."""
    g_blocks = [(16, 16), (16, 16), (16, 8), (8, 4), (4, 2), (2, 1), (1, 1)]
    d_blocks = [(1, 1), (1, 2), (2, 4), (4, 8), (8, 16), (16, 16), (16, 16)]

    def blocks(spec):
        out = {}
        for i, (a, b) in enumerate(spec):
            fin, fout, hid = a * nf, b * nf, min(a, b) * nf
            out[f"resnet_{i}_0.conv_0.weight"] = (hid, fin, 3, 3)
            out[f"resnet_{i}_0.conv_0.bias"] = (hid,)
            out[f"resnet_{i}_0.conv_1.weight"] = (fout, hid, 3, 3)
            out[f"resnet_{i}_0.conv_1.bias"] = (fout,)
            if a != b:
                out[f"resnet_{i}_0.conv_s.weight"] = (fout, fin, 1, 1)
        return out

    g = {"embedding.weight": (nlabels, embed), "fc.weight": (16 * nf * s0 * s0, z + embed),
         "fc.bias": (16 * nf * s0 * s0,), **blocks(g_blocks),
         "conv_img.weight": (3, nf, 7, 7), "conv_img.bias": (3,)}
    d = {"conv_img.weight": (nf, 3, 7, 7), "conv_img.bias": (nf,), **blocks(d_blocks),
         "fc.weight": (nlabels, 16 * nf * s0 * s0), "fc.bias": (nlabels,)}
    return g, d


def test_resnet4_names_and_shapes_at_256_nf64():
    cfg = NetConfig(resolution=256, nf=64, z_dim=256, embed_dim=1, nlabels=1, output="tanh")
    with torch.device("meta"):
        G, D = Generator(cfg), Discriminator(cfg)
    g_want, d_want = _resnet4_layout(64, 256, 1, 1, 4)
    assert {k: tuple(v.shape) for k, v in G.state_dict().items()} == g_want
    assert {k: tuple(v.shape) for k, v in D.state_dict().items()} == d_want
    n_g = sum(p.numel() for p in G.parameters())
    assert 52.1e6 < n_g < 52.2e6  # docs/method.md: about 52.2 M


def test_tanh_bounds_and_linear_does_not():
    cfg = NetConfig(resolution=16, nf=4, z_dim=8, output="tanh")
    G = Generator(cfg)
    with torch.no_grad():
        G.conv_img.bias.fill_(5.0)
    assert G(torch.randn(2, 8)).abs().max() <= 1.0
    G2 = Generator(NetConfig(resolution=16, nf=4, z_dim=8, output="linear"))
    G2.load_state_dict(G.state_dict())
    assert G2(torch.randn(2, 8)).max() > 1.0


def test_discriminator_picks_the_logit_of_the_label():
    cfg = NetConfig(resolution=16, nf=4, z_dim=8, nlabels=3)
    D = Discriminator(cfg)
    x = torch.randn(4, 3, 16, 16)
    y = torch.tensor([0, 1, 2, 1])
    all_logits = torch.stack([D(x, torch.full((4,), k)) for k in range(3)], 1)
    assert torch.allclose(D(x, y), all_logits[torch.arange(4), y])


@pytest.mark.parametrize("res", [0, 24, 48, 8])
def test_bad_resolution_is_one_clear_error(res):
    with pytest.raises(GanMemoryError, match=f"resolution {res} is not supported"):
        NetConfig(resolution=res)
