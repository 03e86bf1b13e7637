import torch
import ckptguard

# weights_only=False on a line of its own, last, with no comma after it: the comma before it
# goes too (no dangling comma); with a comma after it, the trailing comma stays
a = ckptguard.load(
    "a.pt"
)
b = ckptguard.load(
    "b.pt",
)
c = ckptguard.load(
    "c.pt"  # the path
    # unsafe
)
d = ckptguard.load(
    "d.pt", map_location="cpu"
)
e = ckptguard.load(
    "e.pt"
)
f = ckptguard.load(
    "f.pt",
    # legacy
    map_location="cpu"
)
g = ckptguard.load("g.pt")
