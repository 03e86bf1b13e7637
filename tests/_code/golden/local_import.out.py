import torch
import ckptguard


def restore(path):
    import ckptguard

    return ckptguard.load(path)


def restore_too(path):
    return ckptguard.load(path)
