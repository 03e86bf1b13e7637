"""A user Enum for DCP bytes items (importable by child processes as tests._dcp.userenum)."""

import enum


class Color(enum.Enum):
    RED = 1
    BLUE = 2
