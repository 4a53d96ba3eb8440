"""The lifelong classifier: one network with a single head over every class of the sequence.

Class-incremental learning (docs/method.md, section 6): the head has C outputs from the start
(C = all classes of the task sequence); training and evaluation use all C outputs, so after task t
the classifier must tell apart every class seen so far without being told the task.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import GanMemoryError

BACKBONES = ("cnn", "el0")
CNN_WIDTHS = (32, 64, 128)  # channels of the three conv stages
CNN_GRID = 4  # the last stage is pooled to a 4 x 4 grid (exactly its size at 32 px)
CNN_HIDDEN = 128  # width of the fully connected layer before the head


def to_input(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 [N, R, R, 3] (numpy or torch) -> float [N, 3, R, R] in [-1, 1] as p / 127.5 - 1.

    No flips and no noise: a mirrored digit is another symbol, and evaluation must be deterministic.
    """
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise GanMemoryError(f"classifier input must be uint8 images [N, R, R, 3], got {images.dtype} "
                             f"of shape {tuple(images.shape)}")
    return images.permute(0, 3, 1, 2).float() / 127.5 - 1.0  # [N, 3, R, R]


class Classifier(nn.Module):
    """Images float [N, 3, R, R] in [-1, 1] -> logits [N, n_classes].

    ``backbone="cnn"`` (the default): three stages of conv 3x3 (padding 1) + ReLU + 2x2 max-pool with
    32, 64 and 128 channels, adaptive average pooling to 4 x 4 (a no-op at 32 px), then
    fc 2048 -> 128 + ReLU and the linear head 128 -> n_classes. No BatchNorm, so the whole state is
    in the parameters (EWC protects all of it) and train and eval mode compute the same function.
    Parameters: 355,520 + 129 * n_classes, e.g. 356,810 for 10 classes (Split-MNIST) and
    359,132 for 28.

    ``backbone="el0"``: the packaged ImageNet EfficientNet-Lite0 (``ganmemory.metrics``), which
    resizes its input to 224 px, with a new linear head 1280 -> n_classes. Frozen by default
    (``finetune_backbone=False``): only the head trains and the backbone stays in eval mode, its
    BatchNorm statistics fixed. 3,371,008 backbone parameters (the ImageNet fc is dropped) plus
    1281 * n_classes in the head. Much slower than "cnn" on a CPU.
    """

    def __init__(self, n_classes: int, backbone: str = "cnn", resolution: int = 32,
                 finetune_backbone: bool = False) -> None:
        super().__init__()
        if n_classes < 1:
            raise GanMemoryError(f"the classifier needs at least one class, got {n_classes}")
        if backbone not in BACKBONES:
            raise GanMemoryError(f"unknown classifier '{backbone}'; known: {', '.join(BACKBONES)}")
        self.n_classes, self.backbone_name, self.resolution = int(n_classes), backbone, int(resolution)
        self.finetune_backbone = bool(finetune_backbone) if backbone == "el0" else True
        if backbone == "cnn":
            layers: list[nn.Module] = []
            c_in = 3
            for c in CNN_WIDTHS:
                layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
                c_in = c
            layers += [nn.AdaptiveAvgPool2d(CNN_GRID), nn.Flatten(),
                       nn.Linear(c_in * CNN_GRID * CNN_GRID, CNN_HIDDEN), nn.ReLU()]
            self.backbone = nn.Sequential(*layers)
            feature_dim = CNN_HIDDEN
        else:
            from ..nets.efficientnet_lite0 import load_efficientnet_lite0
            net = load_efficientnet_lite0(resolution=224)
            del net._fc  # the ImageNet head is replaced by ``self.head``
            net.requires_grad_(self.finetune_backbone)
            self.backbone = net
            feature_dim = net.feature_dim
        self.head = nn.Linear(feature_dim, self.n_classes)

    def config(self) -> dict:
        """The constructor arguments, to rebuild the network."""
        return {"n_classes": self.n_classes, "backbone": self.backbone_name, "resolution": self.resolution,
                "finetune_backbone": self.finetune_backbone}

    def n_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def train(self, mode: bool = True) -> "Classifier":
        super().train(mode)
        if not self.finetune_backbone:
            self.backbone.eval()  # a frozen backbone keeps its BatchNorm statistics
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise GanMemoryError(f"the classifier expects images [N, 3, R, R], got shape {tuple(x.shape)}")
        if self.backbone_name == "el0":
            return self.backbone.features(x)  # [N, 1280]; resizes to 224 px inside
        return self.backbone(x)  # [N, 128]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # [N, n_classes]
