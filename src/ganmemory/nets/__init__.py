from .config import PAPER_LAYOUT, NetConfig, TaskLayout
from .discriminator import Discriminator
from .generator import Generator

__all__ = ["Discriminator", "Generator", "NetConfig", "PAPER_LAYOUT", "TaskLayout"]
