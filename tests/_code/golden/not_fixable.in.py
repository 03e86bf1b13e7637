import functools
import pickle

import dill
import torch

# pickle_module: ckptguard.load takes none, left alone
a = torch.load("a.pt", pickle_module=dill)
b = torch.load("b.pt", "cpu", pickle)

# values and patches: reported, never rewritten
loader = torch.load
partial_load = functools.partial(torch.load, map_location="cpu")
torch.load = functools.partial(torch.load, weights_only=False)
setattr(torch, "load", loader)


def load_fn(path, fn=torch.load):
    return fn(path)


data = pickle.load(open("data.pkl", "rb"))

# weights_only computed by a call: removing it would skip the call
c = torch.load("c.pt", weights_only=decide("c.pt"))

# but a fixable call next to them is fixed
d = torch.load("d.pt", weights_only=False)
