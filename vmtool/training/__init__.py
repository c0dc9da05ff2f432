"""Training the joint embedding: data preparation and the training loop."""

from vmtool.training.data import DataConfig
from vmtool.training.loop import TrainConfig, TrainResult, train

__all__ = ["DataConfig", "TrainConfig", "TrainResult", "train"]
