"""Private implementation of :mod:`ckptguard.training` (imports torch; ``ckptguard`` does not)."""
