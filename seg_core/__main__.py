"""Command line: ``python -m seg_core {models,segment,train,evaluate} --help``."""

from __future__ import annotations

import sys

from seg_core.cli import main

if __name__ == "__main__":
    sys.exit(main())
