import io
import urllib.request

import dill
import torch
import torch.serialization as ts


def fetch_weights(url):
    blob = urllib.request.urlopen(url).read()
    return torch.load(io.BytesIO(blob))


def fetch_verified(path):
    return ts.load(path, weights_only=True)  # already safe


def load_lambda_checkpoint(path):
    # saved with dill because the config holds lambdas
    return torch.load(path, pickle_module=dill)


def load_all(paths, device):
    return {p: ts.load(p, map_location=device) for p in paths}
