import io

import torch

flag = False

# weights_only from a variable
a = torch.load("a.pt", weights_only=flag)

# weights_only=True is already safe
b = torch.load("b.pt", weights_only=True)

# parenthesized callee
c = (torch.load)("c.pt")

# nested calls
d = torch.load(io.BytesIO(torch.load("inner.pt")["blob"]), weights_only=False)

# in expressions, lambdas, comprehensions, decorators' arguments
e = [torch.load(p) for p in paths]
f = lambda p: torch.load(p, map_location="cpu")
g = {"model": torch.load("g.pt")["state_dict"]}


async def fetch(path):
    return torch.load(await read(path))


# ignore comments keep a call as it is
h = torch.load("h.pt", weights_only=False)  # ckptguard: ignore[CKG102]
i = torch.load(
    "i.pt",
)  # ckptguard: ignore

# lookalikes stay untouched
j = torch.jit.load("j.pt")
s = "torch.load('x')"
# torch.load(x)
