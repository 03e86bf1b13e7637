import ckptguard
import torch

state = ckptguard.load("model.pt")


def later():
    return ckptguard.load("other.pt")
