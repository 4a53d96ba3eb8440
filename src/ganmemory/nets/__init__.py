from .config import NetConfig
from .discriminator import Discriminator
from .generator import Generator

__all__ = ["Discriminator", "Generator", "NetConfig"]
