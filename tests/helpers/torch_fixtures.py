"""Helpers that make randomly initialised torchvision models behave like trained ones for parity
tests."""

import torch


@torch.no_grad()
def wake_up(module: torch.nn.Module, size: int, steps: int = 3, seed: int = 0) -> None:
    """Re-estimate BatchNorm statistics on random images so activations neither vanish nor explode.

    Random init leaves running stats at mean 0 / var 1, and deep random backbones then emit
    features of 1e-14 (SSDlite) - every output becomes input-independent.
    """
    gen = torch.Generator().manual_seed(seed)
    bns = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the calibration batches
    module.train()
    for _ in range(steps):
        module(torch.rand(2, 3, size, size, generator=gen))
    module.eval()


@torch.no_grad()
def spread_class_scores(head: torch.nn.Module, factor: float) -> None:
    """Scale a classification head so class scores spread out instead of tying at 1/C."""
    for p in head.parameters():
        p.mul_(factor)


@torch.no_grad()
def calibrate_logits(
    model: torch.nn.Module, layer: torch.nn.Module, run, target_std: float = 2.0
) -> None:
    """Rescale ``layer`` so its outputs have standard deviation ``target_std`` while ``run()``
    executes
    ``model``: class scores then spread (no ties at 1/C) without saturating (no ties at 1.0)."""
    seen = []
    handle = layer.register_forward_hook(lambda m, i, o: seen.append(o.detach().float().std()))
    try:
        run()
    finally:
        handle.remove()
    std = float(torch.stack(seen).mean())
    for p in layer.parameters():
        p.mul_(target_std / max(std, 1e-12))
