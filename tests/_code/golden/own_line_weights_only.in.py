import torch

# weights_only=False on a line of its own, last, with no comma after it: the comma before it
# goes too (no dangling comma); with a comma after it, the trailing comma stays
a = torch.load(
    "a.pt",
    weights_only=False
)
b = torch.load(
    "b.pt",
    weights_only=False,
)
c = torch.load(
    "c.pt",  # the path
    weights_only=False  # unsafe
)
d = torch.load(
    "d.pt", map_location="cpu",
    weights_only=False
)
e = torch.load(
    "e.pt", weights_only=False
)
f = torch.load(
    "f.pt",
    weights_only=False,  # legacy
    map_location="cpu"
)
g = torch.load("g.pt", weights_only=False)
