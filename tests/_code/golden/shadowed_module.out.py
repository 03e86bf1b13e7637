import torch
from mytools import ckptguard

state = torch.load("model.pt")  # `ckptguard` is something else in this module
