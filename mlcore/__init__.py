"""Tessera's multimodal core: a Django-free PyTorch library."""

import logging
import os

__version__ = "0.1.0"

# Import-time notices nobody can act on: torchao announces the CUDA kernels and Triton that a
# CPU build does not ship, and trips a torch deprecation inside itself; transformers draws a
# progress bar for weights read from a local directory. Errors still show.
for _noisy in ("torchao", "torch.utils._pytree"):
    logging.getLogger(_noisy).setLevel(logging.ERROR)
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
