"""Evaluate exported models: TorchScript, plain state dicts, numpy label files."""

import numpy as np
import torch
from torch import load as torch_load


class Evaluator:
    def __init__(self, weights, labels):
        self.labels = np.load(labels)  # a plain .npy array: not a pickle
        self.scripted = torch.jit.load(weights.replace(".pt", ".ts"))
        self.state = torch_load(weights, "cpu")
        self.weights = weights

    def load(self, path):
        """Reload the weights (this is a method named load, not torch.load)."""
        self.state = torch_load(path, weights_only=True)
        return self

    def reload(self):
        return self.load(self.weights)
