import torch
import ckptguard

a = ckptguard.load(p)
b = ckptguard.load(p)
c = ckptguard.load( p )
d = ckptguard.load(p,)
e = ckptguard.load(p, map_location="cpu",)
f = ckptguard.load(p)
