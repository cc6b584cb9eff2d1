"""Moved to :mod:`seg_core.train.config`; this module keeps the old import path working."""

from seg_core.train.config import TrainConfig, add_train_arguments, command_line, config_from_args

__all__ = ["TrainConfig", "add_train_arguments", "command_line", "config_from_args"]
