def restore(path):
    from torch import load

    return load(path, map_location="cpu")
