"""ganmemory: lifelong generative memory (GAN Memory with No Forgetting, NeurIPS 2020).

A frozen source GAN is shared by every task; each new image domain learns only small
modulation parameters, so nothing learned is ever forgotten.
"""

from .errors import GanMemoryError
from .nets import Discriminator, Generator, NetConfig
from .source import Source
from .train import GANTrainer, TrainConfig

__version__ = "0.1.0"

__all__ = ["Discriminator", "GanMemoryError", "GANTrainer", "Generator", "NetConfig", "Source",
           "TrainConfig", "__version__"]
