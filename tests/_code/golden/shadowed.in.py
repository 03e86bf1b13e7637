import torch


def with_param(ckptguard, path):
    return torch.load(path)  # `ckptguard` is a parameter here: not fixable


class Holder:
    ckptguard = None
    state = torch.load("class-body.pt")  # the class attribute shadows it: not fixable


def fine(path):
    return torch.load(path)


def shadowed_torch(torch, path):
    return torch.load(path)  # not torch at all
