"""``ckptguard code``: find and fix risky torch.load / pickle.load call sites in Python source.

Imports libcst; import this package only when the ``code`` command runs.
"""
