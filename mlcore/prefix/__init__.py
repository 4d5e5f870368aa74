"""Frozen-style generation (Tsimpoukelli et al., 2021): a trainable mapper turns the fused case
embedding into k prefix embeddings for a *frozen* causal language model, which then writes a
short rationale. Only the mapper learns; the language model's weights never change.

Off unless a local language model directory is configured (`PrefixConfig.language_model`).
"""

from pathlib import Path

import torch
from torch import nn


def load_language_model(directory: str | Path):
    """A causal LM and its tokenizer from a local directory (never a hub)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(directory), local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    return model, tokenizer


class PrefixMapper(nn.Module):
    def __init__(self, dim: int, hidden_size: int, prefix_length: int) -> None:
        super().__init__()
        self.prefix_length = prefix_length
        self.hidden_size = hidden_size
        self.net = nn.Sequential(
            nn.Linear(dim, hidden_size * prefix_length // 2),
            nn.Tanh(),
            nn.Linear(hidden_size * prefix_length // 2, hidden_size * prefix_length),
        )

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.net(embedding).view(-1, self.prefix_length, self.hidden_size)


class FrozenPrefixGenerator(nn.Module):
    def __init__(
        self, language_model: nn.Module, tokenizer, *, dim: int, prefix_length: int = 4
    ) -> None:
        super().__init__()
        self.language_model = language_model.requires_grad_(False).eval()
        self.tokenizer = tokenizer
        if tokenizer.pad_token is None:  # GPT-style tokenizers have none; padding is masked anyway
            tokenizer.pad_token = tokenizer.eos_token
        self.mapper = PrefixMapper(dim, language_model.config.hidden_size, prefix_length)
        self.end_id = (
            tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
        )

    def train(self, mode: bool = True) -> "FrozenPrefixGenerator":
        super().train(mode)
        self.language_model.eval()  # frozen: no dropout, no state changes
        return self

    def _token_ids(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        encoded = self.tokenizer(
            [text + (self.tokenizer.eos_token or "") for text in texts],
            padding=True,
            return_tensors="pt",
            add_special_tokens=self.tokenizer.eos_token
            is None,  # BERT-style tokenizers end with [SEP]
        )
        ids, mask = encoded["input_ids"], encoded["attention_mask"]
        if self.tokenizer.eos_token is None and self.tokenizer.cls_token_id is not None:
            ids, mask = ids[:, 1:], mask[:, 1:]  # drop [CLS]: the prefix starts the sequence
        return ids, mask

    def loss(self, embedding: torch.Tensor, texts: list[str]) -> torch.Tensor:
        ids, mask = self._token_ids(texts)
        ids, mask = ids.to(embedding.device), mask.to(embedding.device)
        prefix = self.mapper(embedding)
        tokens = self.language_model.get_input_embeddings()(ids)
        inputs = torch.cat([prefix, tokens], dim=1)
        attention = torch.cat([mask.new_ones(len(ids), prefix.shape[1]), mask], dim=1)
        ignore = torch.full((len(ids), prefix.shape[1]), -100, device=ids.device)
        labels = torch.cat([ignore, ids.masked_fill(mask == 0, -100)], dim=1)
        return self.language_model(
            inputs_embeds=inputs, attention_mask=attention, labels=labels
        ).loss

    @torch.inference_mode()
    def generate(self, embedding: torch.Tensor, *, max_new_tokens: int = 32) -> list[str]:
        """Greedy decoding from the prefix."""
        inputs = self.mapper(embedding)
        embeddings = self.language_model.get_input_embeddings()
        finished = torch.zeros(len(inputs), dtype=torch.bool, device=inputs.device)
        generated: list[torch.Tensor] = []
        for _ in range(max_new_tokens):
            next_ids = self.language_model(inputs_embeds=inputs).logits[:, -1].argmax(dim=-1)
            next_ids = next_ids.masked_fill(finished, self.end_id)
            generated.append(next_ids)
            finished |= next_ids == self.end_id
            if finished.all():
                break
            inputs = torch.cat([inputs, embeddings(next_ids)[:, None]], dim=1)
        ids = torch.stack(generated, dim=1).tolist()
        texts = []
        for row in ids:
            row = row[: row.index(self.end_id)] if self.end_id in row else row
            texts.append(self.tokenizer.decode(row, skip_special_tokens=True).strip())
        return texts


def train_mapper(
    generator: FrozenPrefixGenerator,
    embeddings: torch.Tensor,
    texts: list[str],
    *,
    epochs: int = 50,
    batch_size: int = 16,
    learning_rate: float = 3e-3,
    seed: int = 0,
) -> list[float]:
    """Train the mapper only; returns the mean loss per epoch."""
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(generator.mapper.parameters(), lr=learning_rate)
    losses = []
    for _ in range(epochs):
        generator.train()
        order = torch.randperm(len(texts))
        total = 0.0
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            loss = generator.loss(embeddings[rows], [texts[i] for i in rows.tolist()])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(rows)
        losses.append(total / len(texts))
    generator.eval()
    return losses
