import torch
import torch as th
import torch.serialization
import torch.serialization as ts
from torch import load
from torch import load as torch_load
from torch.serialization import load as ser_load
from torch import serialization

a = torch.load("a.pt")
b = th.load("b.pt", weights_only=False)
c = torch.serialization.load("c.pt", map_location="cpu")
d = ts.load("d.pt")
e = load("e.pt", "cpu")
f = torch_load("f.pt", weights_only=False, map_location="cpu")
g = ser_load(f="g.pt")
h = serialization.load("h.pt", weights_only=False)
