import io

import torch
import ckptguard

flag = False

# weights_only from a variable
a = ckptguard.load("a.pt")

# weights_only=True is already safe
b = torch.load("b.pt", weights_only=True)

# parenthesized callee
c = (ckptguard.load)("c.pt")

# nested calls
d = ckptguard.load(io.BytesIO(ckptguard.load("inner.pt")["blob"]))

# in expressions, lambdas, comprehensions, decorators' arguments
e = [ckptguard.load(p) for p in paths]
f = lambda p: ckptguard.load(p, map_location="cpu")
g = {"model": ckptguard.load("g.pt")["state_dict"]}


async def fetch(path):
    return ckptguard.load(await read(path))


# ignore comments keep a call as it is
h = torch.load("h.pt", weights_only=False)  # ckptguard: ignore[CKG102]
i = torch.load(
    "i.pt",
)  # ckptguard: ignore

# lookalikes stay untouched
j = torch.jit.load("j.pt")
s = "torch.load('x')"
# torch.load(x)
