import os
import pickle

import joblib


def cached_index(root):
    cache = os.path.join(root, "index.pkl")
    if os.path.exists(cache):
        with open(cache, "rb") as fh:
            return pickle.load(fh)
    index = sorted(os.listdir(root))
    with open(cache, "wb") as fh:
        pickle.dump(index, fh)
    return index


def load_scaler(path):
    return joblib.load(path)
