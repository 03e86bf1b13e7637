"""Reporters: turn a :class:`~ckptguard.ScanReport` into text (one module per format).

They return strings; only the CLI writes them out. Import them lazily (start-up time).
"""
