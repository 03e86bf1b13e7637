import torch
import ckptguard

# weights_only between two arguments, comments everywhere
state = ckptguard.load(
    path,  # where the checkpoint lives
    # it holds an argparse.Namespace
    map_location="cpu",  # no GPU here
)

# weights_only last, with a trailing comma
state = ckptguard.load(
    path,  # where the checkpoint lives
    # old checkpoint
)

# weights_only last, no trailing comma
state = ckptguard.load(
    path
    # old checkpoint
)

# hanging indent
state = ckptguard.load(path  # the file
                   )

# weights_only first
state = ckptguard.load(f=path)

# a multi-line call without weights_only keeps its layout
state = ckptguard.load(
    # the path comes from the config
    cfg.checkpoint,
    map_location=lambda storage, loc: storage,  # keep on CPU
)
