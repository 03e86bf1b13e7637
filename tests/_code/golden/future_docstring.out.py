#!/usr/bin/env python
# -*- coding: utf-8 -*-
"""Evaluate a trained model."""

from __future__ import annotations

import argparse

import torch
import ckptguard


def main() -> None:
    args = argparse.ArgumentParser().parse_args()
    model = ckptguard.load(args.checkpoint)
    print(model)


if __name__ == "__main__":
    main()
