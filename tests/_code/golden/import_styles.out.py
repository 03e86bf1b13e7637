import torch
import torch as th
import torch.serialization
import torch.serialization as ts
from torch import load
from torch import load as torch_load
from torch.serialization import load as ser_load
from torch import serialization
import ckptguard

a = ckptguard.load("a.pt")
b = ckptguard.load("b.pt")
c = ckptguard.load("c.pt", map_location="cpu")
d = ckptguard.load("d.pt")
e = ckptguard.load("e.pt", "cpu")
f = ckptguard.load("f.pt", map_location="cpu")
g = ckptguard.load(f="g.pt")
h = ckptguard.load("h.pt")
