"""``python -m ckptguard``: the command-line interface."""

from ckptguard._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
