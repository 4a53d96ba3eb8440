"""Class-incremental lifelong classification (docs/method.md, section 6).

A sequence of tasks with disjoint classes (``tasks``), one classifier with a single head over
all classes (``classifier``), a strategy that decides what the classifier trains on
(``strategies``: finetune, ewc, joint, gan-memory, mergan), the loop (``runner``) and the scores
(``metrics``).
"""

from .classifier import Classifier, to_input
from .config import LifelongConfig
from .metrics import (accuracy, accuracy_row, average_accuracy, average_forgetting, pooled_accuracy,
                      seen_class_accuracy)
from .runner import run_lifelong
from .strategies import STRATEGIES, ReplayPool, Strategy, get_strategy
from .tasks import BENCHMARKS, ClassTask, TaskData, load_task_data, n_classes, parse_tasks

__all__ = ["BENCHMARKS", "Classifier", "ClassTask", "LifelongConfig", "ReplayPool", "STRATEGIES",
           "Strategy", "TaskData", "accuracy", "accuracy_row", "average_accuracy", "average_forgetting",
           "get_strategy", "load_task_data", "n_classes", "parse_tasks", "pooled_accuracy", "run_lifelong",
           "seen_class_accuracy", "to_input"]
