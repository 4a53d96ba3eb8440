"""The network configuration, shared by the generator and the discriminator."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..configs import check_types, config_from_dict
from ..errors import GanMemoryError

# Channel multipliers of GP-GAN's ``resnet4`` generator, block i maps MULTS[i] -> MULTS[i + 1]
# (x nf). The discriminator uses the same list reversed.
MULTS = (16, 16, 16, 8, 4, 2, 1, 1)


@dataclass(frozen=True)
class NetConfig:
    resolution: int = 32  # image side; a power of two >= 16. 32 is the CPU default
    nf: int = 32  # width multiplier; GP-GAN's CelebA-HQ model uses 64 at 256 px
    z_dim: int = 256  # latent size, as GP-GAN
    embed_dim: int = 1  # label embedding size; 1 for an unconditional model, as GP-GAN
    nlabels: int = 1  # labels the generator embeds and the discriminator scores
    output: str = "linear"  # "tanh" (exact GP-GAN) or "linear": tanh collapses on white data

    def __post_init__(self) -> None:
        check_types(self)
        r = self.resolution
        if r < 16 or r > 1024 or r & (r - 1):
            raise GanMemoryError(f"resolution {r} is not supported: use a power of two from 16 to 1024 "
                                 "(32 on CPU; 64, 128, 256 follow GP-GAN's layout)")
        if self.output not in ("tanh", "linear"):
            raise GanMemoryError(f"output activation '{self.output}' is unknown: use tanh or linear")
        for name, most in (("nf", 1024), ("z_dim", 65_536), ("embed_dim", 65_536), ("nlabels", 100_000)):
            if not 1 <= getattr(self, name) <= most:
                raise GanMemoryError(f"network option {name} must be in [1, {most:,}], got {getattr(self, name)}")

    @property
    def s0(self) -> int:
        """Spatial size of the generator's first feature map (and the discriminator's last)."""
        return self.resolution // 64 if self.resolution >= 64 else 4

    @property
    def mults(self) -> tuple[int, ...]:
        """Channel multipliers, one more than the number of blocks.

        At >= 64 px this is GP-GAN's resnet4 exactly (7 blocks, s0 = resolution / 64). Below
        64 px, where s0 would drop under 1, the generator starts at 4x4 and keeps the last
        log2(resolution / 4) + 1 blocks of that layout: the cheap high-resolution end.
        """
        if self.resolution >= 64:
            return MULTS
        n_blocks = (self.resolution // 4).bit_length()  # log2(r / 4) + 1
        return MULTS[-(n_blocks + 1):]

    @property
    def n_blocks(self) -> int:
        return len(self.mults) - 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "NetConfig":
        return config_from_dict(cls, d, "network")


@dataclass(frozen=True)
class TaskLayout:
    """Which parameters a task owns, beyond those of the paper.

    The paper's task (every field False) owns gamma / beta / bias offset of every 3x3 conv of
    the generator's blocks and of its first Linear, the same of the discriminator's block convs,
    and the discriminator's last Linear. Each option adds a small, per-task part; the source stays
    frozen and a new task still starts exactly at the source.
    """

    output_conv: bool = False  # G's 7x7 output conv modulated (gamma / beta [3, C], bias offset [3])
    colour: bool = False  # a per-task colour affine on G's output, x -> A x + b (A [3, 3] from I, b from 0)
    input_conv: bool = False  # D's 7x7 input conv modulated (from gamma = 1, beta = 0)

    def __post_init__(self) -> None:
        check_types(self)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TaskLayout":
        return config_from_dict(cls, d, "task layout")


PAPER_LAYOUT = TaskLayout()
