"""The InceptionV3 of FID (TensorFlow's 2015-12-05 graph as ported by pytorch-fid).

FID as published is defined by this network: torchvision's InceptionV3 layout with a 1008-way
classifier and three TensorFlow quirks, which change the features and so must be kept:

* the average pools inside the Mixed_5x, Mixed_6b-e and Mixed_7b blocks ignore the zero padding
  (``count_include_pad=False``), as TensorFlow's do;
* the pool branch of the last block, Mixed_7c, is a 3x3 *max* pool, not an average pool;
* every conv is bias-free and followed by BatchNorm with eps = 1e-3 and a ReLU.

Features are the 2048-d global average pool ("pool3") after Mixed_7c. Inputs are resized to
299 x 299 px (bilinear, align_corners=False, no antialias: pytorch-fid's choice) and scaled to
[-1, 1] as x = 2 p / 255 - 1 for 0..255 pixels p.

The weights file ``pt_inception-2015-12-05-6726825d.pth`` ships in no package here; a user who
has it passes its path. Its state-dict names are torchvision's (``Conv2d_1a_3x3.conv.weight``,
``Mixed_5b.branch_pool.bn.running_var``, ``fc.weight`` [1008, 2048], ...).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import GanMemoryError

INCEPTION_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                         + INCEPTION_WEIGHTS_FILE)
FEATURE_DIM = 2048
NUM_CLASSES = 1008  # TensorFlow's graph has 1008 outputs (1000 classes and 8 unused)
INPUT_SIZE = 299


class BasicConv2d(nn.Module):
    """conv (no bias) -> BatchNorm (eps 1e-3) -> ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int | tuple[int, int],
                 stride: int = 1, padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_tf(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average that divides by the number of real (unpadded) pixels, as TF does."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """35 x 35 block: 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avgpool -> 1x1.
    Output channels: 64 + 64 + 96 + pool_features."""

    def __init__(self, c_in: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(c_in, 64, 1)
        self.branch5x5_1 = BasicConv2d(c_in, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(c_in, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(c_in, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)
        b = self.branch5x5_2(self.branch5x5_1(x))
        c = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        d = self.branch_pool(_avg_pool_tf(x))
        return torch.cat([a, b, c, d], dim=1)


class InceptionB(nn.Module):
    """35 -> 17 reduction: 3x3 s2 | 1x1 -> 3x3 -> 3x3 s2 | maxpool s2. Output 384 + 96 + c_in."""

    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(c_in, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(c_in, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3(x)
        b = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        c = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([a, b, c], dim=1)


class InceptionC(nn.Module):
    """17 x 17 block with factorised 7x7 convs (1x7 and 7x1) of width c7. Output 4 * 192."""

    def __init__(self, c_in: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))  # (kernel, padding) pairs
        self.branch1x1 = BasicConv2d(c_in, 192, 1)
        self.branch7x7_1 = BasicConv2d(c_in, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, row[0], padding=row[1])
        self.branch7x7_3 = BasicConv2d(c7, 192, col[0], padding=col[1])
        self.branch7x7dbl_1 = BasicConv2d(c_in, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, col[0], padding=col[1])
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, row[0], padding=row[1])
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, col[0], padding=col[1])
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, row[0], padding=row[1])
        self.branch_pool = BasicConv2d(c_in, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)
        b = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        c = x
        for conv in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                     self.branch7x7dbl_4, self.branch7x7dbl_5):
            c = conv(c)
        d = self.branch_pool(_avg_pool_tf(x))
        return torch.cat([a, b, c, d], dim=1)


class InceptionD(nn.Module):
    """17 -> 8 reduction: 1x1 -> 3x3 s2 | 1x1 -> 1x7 -> 7x1 -> 3x3 s2 | maxpool s2.
    Output 320 + 192 + c_in."""

    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(c_in, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(c_in, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3_2(self.branch3x3_1(x))
        b = x
        for conv in (self.branch7x7x3_1, self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b = conv(b)
        c = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([a, b, c], dim=1)


class InceptionE(nn.Module):
    """8 x 8 block with split 1x3 / 3x1 outputs. Output 320 + 2 * 384 + 2 * 384 + 192 = 2048.

    ``pool`` is "avg" (TF-style, padding not counted) for Mixed_7b and "max" for Mixed_7c: the
    FID graph has a max pool there, unlike the paper.
    """

    def __init__(self, c_in: int, pool: str) -> None:
        super().__init__()
        assert pool in ("avg", "max")
        self.pool = pool
        self.branch1x1 = BasicConv2d(c_in, 320, 1)
        self.branch3x3_1 = BasicConv2d(c_in, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(c_in, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(c_in, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)
        h = self.branch3x3_1(x)
        b = torch.cat([self.branch3x3_2a(h), self.branch3x3_2b(h)], dim=1)
        h = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        c = torch.cat([self.branch3x3dbl_3a(h), self.branch3x3dbl_3b(h)], dim=1)
        pooled = (_avg_pool_tf(x) if self.pool == "avg"
                  else F.max_pool2d(x, kernel_size=3, stride=1, padding=1))
        d = self.branch_pool(pooled)
        return torch.cat([a, b, c, d], dim=1)


class FIDInceptionV3(nn.Module):
    """InceptionV3 with the FID graph's blocks; attribute names follow the weights file."""

    feature_dim = FEATURE_DIM

    def __init__(self, resolution: int = INPUT_SIZE) -> None:
        super().__init__()
        self.resolution = int(resolution)
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool="avg")
        self.Mixed_7c = InceptionE(2048, pool="max")
        self.fc = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    def scale_input(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 pixels or [-1, 1] floats [N, 3, H, W] -> [-1, 1] floats [N, 3, 299, 299]."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise GanMemoryError(f"InceptionV3 expects images [N, 3, H, W], got shape {tuple(x.shape)}")
        if x.dtype == torch.uint8:
            x = x.float() / 127.5 - 1.0  # 2 p / 255 - 1
        else:
            x = x.float().clamp(-1.0, 1.0)
        if x.shape[-2:] != (self.resolution, self.resolution):
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear",
                              align_corners=False, antialias=False)
        return x  # [N, 3, 299, 299]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """pool3 features, float32 [N, 2048]."""
        h = self.scale_input(x)
        h = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(h)))  # [N, 64, 147, 147]
        h = F.max_pool2d(h, kernel_size=3, stride=2)  # [N, 64, 73, 73]
        h = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(h))  # [N, 192, 71, 71]
        h = F.max_pool2d(h, kernel_size=3, stride=2)  # [N, 192, 35, 35]
        h = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(h)))  # [N, 288, 35, 35]
        h = self.Mixed_6a(h)  # [N, 768, 17, 17]
        h = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(h))))  # [N, 768, 17, 17]
        h = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(h)))  # [N, 2048, 8, 8]
        return h.mean(dim=(2, 3))  # [N, 2048]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [N, 1008] of the 2015 graph (class indices are offset from torchvision's)."""
        return self.fc(self.features(x))


def _missing_weights_message(what: str) -> str:
    return (f"{what}: FID needs the InceptionV3 weights file '{INCEPTION_WEIGHTS_FILE}' from "
            f"pytorch-fid's 'fid_weights' release ({INCEPTION_WEIGHTS_URL}), which cannot be "
            "downloaded here; fetch it on a machine with internet access and pass its path "
            "as the Inception weights")


def load_fid_inception(weights: str | os.PathLike | None,
                       device: str | torch.device = "cpu") -> FIDInceptionV3:
    """Build the FID InceptionV3, load ``weights`` strictly and set eval mode.

    ``num_batches_tracked`` buffers (unused at eval) are filled with zeros when the file lacks
    them, since files written before PyTorch 0.4.1 do not have them; every other tensor must match.
    """
    if weights is None:
        raise GanMemoryError(_missing_weights_message("no Inception weights file was given"))
    path = Path(weights)
    if not path.is_file():
        raise GanMemoryError(_missing_weights_message(f"the Inception weights file '{path}' does not exist"))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which file
        raise GanMemoryError(f"the Inception weights file '{path}' cannot be read ({exc})") from exc
    if not isinstance(state, dict):
        raise GanMemoryError(f"the Inception weights file '{path}' does not hold a state dict")
    net = FIDInceptionV3()
    state = dict(state)
    for key, value in net.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise GanMemoryError(f"the Inception weights file '{path}' does not fit the FID InceptionV3 "
                             f"layout (is it '{INCEPTION_WEIGHTS_FILE}'?): {str(exc).splitlines()[-1].strip()}"
                             ) from exc
    net.requires_grad_(False)
    return net.eval().to(device)
