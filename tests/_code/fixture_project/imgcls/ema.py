import copy

import torch


class EMA:
    def __init__(self, model, decay=0.999):
        self.shadow = copy.deepcopy(model)
        self.decay = decay

    def load(self, path):
        self.shadow.load_state_dict(
            torch.load(
                path,
                # keep every tensor where it was saved
                map_location=lambda storage, loc: storage,
            )
        )


def restore_ema(ema, torch, path):
    # `torch` here is a parameter (a stub in unit tests), not the torch module
    ema.shadow.load_state_dict(torch.load(path))
