"""The start-up hook directory ``ckptguard run`` puts first on child processes' PYTHONPATH.

It holds only ``sitecustomize.py`` (see :mod:`ckptguard._load._children`).
"""
