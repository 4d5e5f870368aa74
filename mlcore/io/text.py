"""Text → tokens of the text encoder's tokenizer (a local directory, never a hub download)."""

from pathlib import Path

import torch

from mlcore.errors import InputError


def read_text(path: str | Path) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError as error:
        raise InputError(f"text not found: {path}") from error
    except UnicodeDecodeError as error:
        raise InputError(f"text is not UTF-8: {path}") from error
    if not text.strip():
        raise InputError("text is empty")
    return text


class Tokenizer:
    """The encoder's tokenizer with the configured maximum length."""

    def __init__(self, directory: str | Path, *, max_length: int) -> None:
        from transformers import AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
        self.max_length = max_length

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        encoded = self._tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    def ids(self, text: str) -> list[int]:
        return self._tokenizer(text, truncation=True, max_length=self.max_length)["input_ids"]

    @property
    def pad_id(self) -> int:
        return self._tokenizer.pad_token_id or 0

    @property
    def inner(self):
        return self._tokenizer
