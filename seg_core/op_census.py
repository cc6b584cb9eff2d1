"""Moved to :mod:`seg_core.energy.op_census`, beside the energy estimate it serves; this path keeps old imports working."""

from seg_core.energy.op_census import *  # noqa: F403
from seg_core.energy.op_census import __all__  # noqa: F401
