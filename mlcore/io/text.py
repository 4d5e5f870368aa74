"""Text → tokens of the text encoder's tokenizer (a local directory, never a hub download)."""

import re
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


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`: split after ., ! or ? and space; a line break also ends one."""
    return [
        sentence.strip()
        for line in text.splitlines()
        for sentence in _SENTENCE_END.split(line)
        if sentence.strip()
    ]


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

    def sentence_spans(self, text: str) -> list[tuple[str, int, int]]:
        """Each sentence of `text` with the [start, end) of its tokens in `ids(text)`, for
        sentences that fit before truncation. WordPiece splits at spaces and punctuation, so the
        tokens of a text are its sentences' tokens, one after another."""
        limit = self.max_length - 1  # the last place is the separator's
        spans, start = [], 1  # after the [CLS] token
        for sentence in split_sentences(text):
            count = len(self._tokenizer(sentence, add_special_tokens=False)["input_ids"])
            end = min(start + count, limit)
            if end <= start:
                break
            spans.append((sentence, start, end))
            start = end
        return spans

    @property
    def pad_id(self) -> int:
        return self._tokenizer.pad_token_id or 0

    @property
    def inner(self):
        return self._tokenizer
