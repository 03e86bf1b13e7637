import torch

# weights_only between two arguments, comments everywhere
state = torch.load(
    path,  # where the checkpoint lives
    weights_only=False,  # it holds an argparse.Namespace
    map_location="cpu",  # no GPU here
)

# weights_only last, with a trailing comma
state = torch.load(
    path,  # where the checkpoint lives
    weights_only=False,  # old checkpoint
)

# weights_only last, no trailing comma
state = torch.load(
    path,
    weights_only=False  # old checkpoint
)

# hanging indent
state = torch.load(path,  # the file
                   weights_only=False)

# weights_only first
state = torch.load(weights_only=False, f=path)

# a multi-line call without weights_only keeps its layout
state = torch.load(
    # the path comes from the config
    cfg.checkpoint,
    map_location=lambda storage, loc: storage,  # keep on CPU
)
