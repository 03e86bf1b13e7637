import ckptguard

def restore(path):
    from torch import load

    return ckptguard.load(path, map_location="cpu")
