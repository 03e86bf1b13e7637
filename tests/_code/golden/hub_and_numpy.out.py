import numpy as np
import torch
import torch.hub
from numpy import load as npload
from torch.hub import load_state_dict_from_url
from torch.utils import model_zoo
from torch.utils.model_zoo import load_url as zoo

# torch.hub / model_zoo loaders: weights_only defaults to False; the fix passes True
a = torch.hub.load_state_dict_from_url("https://x/a.pth", weights_only=True)
b = load_state_dict_from_url("https://x/b.pth", map_location="cpu", weights_only=True)
c = model_zoo.load_url(
    "https://x/c.pth",
    progress=False,
    weights_only=True,
)
d = zoo(
    "https://x/d.pth",  # no trailing comma
    weights_only=True
)
e = torch.hub.load_state_dict_from_url("u", None, None, True, False, None, True)
f = torch.hub.load_state_dict_from_url("u", weights_only=True)  # fine as it is
g = torch.hub.load_state_dict_from_url("u", **opts)  # may carry weights_only: left alone
h = torch.hub.load_state_dict_from_url("u", weights_only=flag())  # a call: left alone
i = torch.hub.load_state_dict_from_url("u", weights_only=True)

# numpy.load with allow_pickle: reported, never rewritten
j = np.load("a.npy", allow_pickle=True)
k = npload("a.npy", None, True)
l = np.load("a.npy")
m = np.load("a.npy", allow_pickle=False)
n = np.load("a.npy", **{"allow_pickle": True})
