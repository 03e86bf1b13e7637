import torch

a = torch.load(p, weights_only=False)
b = torch.load(p,weights_only=False)
c = torch.load( p , weights_only = False )
d = torch.load(p, weights_only=False,)
e = torch.load(p, weights_only=False, map_location="cpu",)
f = torch.load(p, weights_only=(
    False))
