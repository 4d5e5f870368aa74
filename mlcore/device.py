"""Device choice and mixed precision, in one place."""

import contextlib

import torch


def select_device(preference: str = "auto") -> torch.device:
    """'auto' takes CUDA when present; 'cuda' without a GPU is an error, not a silent fallback."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("MLCORE_DEVICE=cuda but no CUDA device is available")
    return device


def autocast(device: torch.device):
    """bf16 autocast on GPU; full precision on CPU, where bf16 is slow and less accurate."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
