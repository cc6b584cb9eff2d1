"""Moved to :mod:`seg_core.train.zoo`; this module keeps the old import path working."""

from seg_core.train.zoo import (
    ARCHITECTURES,
    GATE_MARGIN,
    PROTOCOLS,
    REFERENCE,
    ZOO_DIR,
    Protocol,
    ZooQueue,
    bf16_available,
    protocol_for,
    run_queue,
    shipping_gate_failures,
    train_command,
    validation_figure,
)

__all__ = [
    "ARCHITECTURES",
    "GATE_MARGIN",
    "PROTOCOLS",
    "REFERENCE",
    "ZOO_DIR",
    "Protocol",
    "ZooQueue",
    "bf16_available",
    "protocol_for",
    "run_queue",
    "shipping_gate_failures",
    "train_command",
    "validation_figure",
]
