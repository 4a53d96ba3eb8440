from .config import TrainConfig
from .ema import ema_update
from .losses import d_loss_nonsaturating, g_loss_nonsaturating, r1_penalty
from .trainer import BatchSchedule, GANTrainer

__all__ = ["BatchSchedule", "GANTrainer", "TrainConfig", "d_loss_nonsaturating", "ema_update",
           "g_loss_nonsaturating", "r1_penalty"]
