#!/usr/bin/env python
# -*- coding: utf-8 -*-
"""Evaluate a trained model."""

from __future__ import annotations

import argparse

import torch


def main() -> None:
    args = argparse.ArgumentParser().parse_args()
    model = torch.load(args.checkpoint, weights_only=False)
    print(model)


if __name__ == "__main__":
    main()
