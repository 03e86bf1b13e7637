import os
import sys
import ckptguard

sys.path.insert(0, os.path.dirname(__file__))

import torch  # noqa: E402

state = ckptguard.load("model.pt", map_location="cpu")  # comment kept
import ckptguard  # too late for the call above: a new import goes in the leading block
