import ckptguard
import torch

state = torch.load("model.pt", weights_only=False)


def later():
    return torch.load("other.pt")
