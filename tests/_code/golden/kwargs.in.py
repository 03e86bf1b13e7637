import torch


def load_with(path, **kw):
    return torch.load(path, **kw)


def load_unsafe(path, **kw):
    return torch.load(path, weights_only=False, **kw)


def load_on(path, device, **opts):
    return torch.load(path, map_location=device, **opts)


def load_star(*args):
    return torch.load(*args)  # may carry pickle_module: left alone


def load_dict(path):
    return torch.load(path, **{"map_location": "cpu"})
