import torch
import ckptguard


def load_with(path, **kw):
    return ckptguard.load(path, **kw)


def load_unsafe(path, **kw):
    return ckptguard.load(path, **kw)


def load_on(path, device, **opts):
    return ckptguard.load(path, map_location=device, **opts)


def load_star(*args):
    return torch.load(*args)  # may carry pickle_module: left alone


def load_dict(path):
    return ckptguard.load(path, **{"map_location": "cpu"})
