"""The convolution routes of nets/ops.py and the modulated kernel's own backward compute what
the plain ops compute: values, first gradients and R1's second-order gradients."""

import pytest
import torch
import torch.nn.functional as F

from ganmemory.nets.modulated import ModulatedConv2d, _TaskKernel
from ganmemory.nets.ops import Conv2d, plain_ops, routed, same_conv2d


def _r1_grad_of_weight(conv, x, w, b):
    """d/dw of ||d sum(conv(x)^2) / dx||^2, the shape of R1's second-order term."""
    x = x.detach().requires_grad_()
    (gx,) = torch.autograd.grad(conv(x, w, b).square().sum(), x, create_graph=True)
    (gw,) = torch.autograd.grad(gx.square().sum(), w)
    return gw


@pytest.mark.parametrize("hw", [(1, 1), (1, 2), (2, 2), (2, 3), (4, 4)])
@pytest.mark.parametrize("k", [1, 3, 7])
@pytest.mark.parametrize("bias", [True, False])
def test_same_conv2d_is_conv2d_in_values_gradients_and_r1(hw, k, bias):
    torch.manual_seed(0)
    x = torch.randn(3, 6, *hw, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 6, k, k, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, dtype=torch.float64, requires_grad=True) if bias else None

    def plain(x, w, b):
        return F.conv2d(x, w, b, padding=k // 2)

    def routed_conv(x, w, b):
        return same_conv2d(x, w, b, k // 2)

    y, want = routed_conv(x, w, b), plain(x, w, b)
    assert y.shape == want.shape
    torch.testing.assert_close(y, want, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(want)
    inputs = (x, w) + ((b,) if bias else ())
    for a, e in zip(torch.autograd.grad(y, inputs, g), torch.autograd.grad(want, inputs, g), strict=True):
        torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(_r1_grad_of_weight(routed_conv, x, w, b), _r1_grad_of_weight(plain, x, w, b),
                               rtol=1e-10, atol=1e-10)


def test_the_tiny_map_routes_are_taken_and_plain_ops_turns_them_off(monkeypatch):
    def no_conv(*args, **kwargs):
        raise AssertionError("F.conv2d called")

    x, w, b = torch.randn(2, 4, 2, 2), torch.randn(3, 4, 3, 3), torch.randn(3)
    want = F.conv2d(x, w, b, padding=1)
    monkeypatch.setattr(F, "conv2d", no_conv)
    torch.testing.assert_close(same_conv2d(x, w, b, 1), want)  # 2x2: im2col, no conv
    same_conv2d(x[..., :1, :1], w, b, 1)  # 1x1: the centre tap, no conv
    with pytest.raises(AssertionError, match="F.conv2d called"):
        same_conv2d(torch.randn(2, 4, 4, 4), w, b, 1)  # 4x4: the plain conv
    assert routed()
    with plain_ops():
        assert not routed()
        with pytest.raises(AssertionError, match="F.conv2d called"):
            same_conv2d(x, w, b, 1)
    assert routed()


def test_cpu_convs_run_channels_last_and_the_generator_returns_contiguous_images(tiny_cfg):
    from ganmemory.nets import Generator

    torch.manual_seed(0)
    x = torch.randn(2, 8, 8, 8, requires_grad=True)
    w = torch.randn(6, 8, 3, 3, requires_grad=True)
    y = same_conv2d(x, w, None, 1)
    assert y.is_contiguous(memory_format=torch.channels_last)
    want = F.conv2d(x, w, None, padding=1)
    torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(want)
    for a, e in zip(torch.autograd.grad(y, (x, w), g), torch.autograd.grad(want, (x, w), g), strict=True):
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-4)
    images = Generator(tiny_cfg)(torch.randn(3, tiny_cfg.z_dim))
    assert images.is_contiguous()  # safetensors and every consumer read it as stored


def test_conv2d_keeps_nn_conv2d_names_and_function():
    torch.manual_seed(0)
    ours, plain = Conv2d(4, 6, 3, padding=1), torch.nn.Conv2d(4, 6, 3, padding=1)
    plain.load_state_dict(ours.state_dict())
    assert list(ours.state_dict()) == list(plain.state_dict())
    for hw in [(1, 1), (2, 2), (8, 8)]:
        x = torch.randn(2, 4, *hw)
        torch.testing.assert_close(ours(x), plain(x), rtol=1e-5, atol=1e-5)
    strided = Conv2d(4, 6, 3, padding=1, stride=2)  # not a same-size conv: nn.Conv2d's own path
    x = torch.randn(2, 4, 8, 8)
    assert torch.equal(strided(x), F.conv2d(x, strided.weight, strided.bias, stride=2, padding=1))


@pytest.mark.parametrize("stacked", [False, True])
def test_task_kernel_backward_is_autograds(stacked):
    torch.manual_seed(0)
    shape = (2, 5, 4) if stacked else (5, 4)  # a leading task dimension T = 2 when stacked
    gamma = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    beta = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    weight_n = torch.randn(5, 4, 3, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda g, b: _TaskKernel.apply(g, b, weight_n), (gamma, beta))
    w = _TaskKernel.apply(gamma, beta, weight_n)
    want = torch.addcmul(beta[..., None, None], gamma[..., None, None], weight_n)
    assert torch.equal(w, want)


def test_modulated_conv_builds_its_kernel_by_autograd_inside_plain_ops():
    conv = ModulatedConv2d(4, 3)
    conv.init_from(torch.randn(3, 4, 3, 3), torch.randn(3))
    assert type(conv.kernel()[0].grad_fn).__name__ == "_TaskKernelBackward"
    with plain_ops():
        assert type(conv.kernel()[0].grad_fn).__name__ == "AddcmulBackward0"
    x = torch.randn(2, 4, 5, 5)
    (g_ours,) = torch.autograd.grad(conv(x).square().sum(), conv.gamma)
    with plain_ops():
        (g_plain,) = torch.autograd.grad(conv(x).square().sum(), conv.gamma)
    torch.testing.assert_close(g_ours, g_plain, rtol=1e-5, atol=1e-5)
