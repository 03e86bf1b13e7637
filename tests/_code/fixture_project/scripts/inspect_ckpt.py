import contextlib
import sys

import pandas as pd
import torch


@contextlib.contextmanager
def trusting_loads():
    original = torch.load

    def patched(*args, **kwargs):
        kwargs["weights_only"] = False
        return original(*args, **kwargs)

    setattr(torch, "load", patched)
    try:
        yield
    finally:
        setattr(torch, "load", original)


def main(path, metrics):
    with trusting_loads():
        ckpt = torch.load(path)
    frame = pd.read_pickle(metrics)
    print(sorted(ckpt), frame.describe())


if __name__ == "__main__":
    main(*sys.argv[1:3])
