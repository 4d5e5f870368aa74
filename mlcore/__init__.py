"""Tessera's multimodal core: a Django-free PyTorch library."""

__version__ = "0.1.0"
