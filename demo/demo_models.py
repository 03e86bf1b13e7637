"""A stand-in for a user's own code (like ``deepafx_st.utils``): a user Enum that ends up in a
Lightning-style checkpoint's hyper-parameters. Imported only to *generate* the demo files;
ckptguard never imports it (it never imports anything named in a file)."""

from __future__ import annotations

import enum


class DSPMode(enum.Enum):
    NONE = "none"
    TRAIN_INFER = "train_infer"
    INFER = "infer"
