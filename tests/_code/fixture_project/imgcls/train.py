import argparse

import torch
from torch import nn

from imgcls.checkpoint import resume, save_checkpoint


def build_model(num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, num_classes))


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--resume")
    parser.add_argument("--pretrained")
    args = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = build_model(10).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    start = 0
    if args.pretrained:
        model.load_state_dict(torch.load(args.pretrained, map_location=device))
    if args.resume:
        start = resume(args.resume, model, optimizer)
    for epoch in range(start, 10):
        save_checkpoint(f"epoch{epoch}.pt", model, optimizer, epoch, args)
