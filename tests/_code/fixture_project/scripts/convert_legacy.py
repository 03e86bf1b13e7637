#!/usr/bin/env python
"""Convert pre-1.6 checkpoints written under Python 2 to the zip format."""

from __future__ import annotations

import sys

import torch


def convert(src, dst):
    state = torch.load(src, encoding="latin1")  # Python 2 pickles need latin1
    torch.save(state, dst)


if __name__ == "__main__":
    convert(*sys.argv[1:3])
