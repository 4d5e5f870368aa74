import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from mlcore.errors import ConfigError


@dataclass(frozen=True)
class Intervention:
    id: str
    title: str
    description: str
    affects: tuple[str, ...]
    subjects: tuple[str, ...]  # empty: any subject


@dataclass(frozen=True)
class InterventionLibrary:
    version: str
    interventions: tuple[Intervention, ...]

    @classmethod
    def load(cls, path: str | Path) -> "InterventionLibrary":
        try:
            data = json.loads(Path(path).read_text())
            items = tuple(
                Intervention(
                    id=item["id"],
                    title=item["title"],
                    description=item.get("description", ""),
                    affects=tuple(item.get("affects", ())),
                    subjects=tuple(item.get("subjects", ())),
                )
                for item in data["interventions"]
            )
            library = cls(version=str(data["version"]), interventions=items)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ConfigError(f"intervention library {path} is not usable: {error}") from error
        ids = [item.id for item in items]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"intervention library {path} repeats an id")
        return library

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": self.version,
                "interventions": [
                    {
                        "id": item.id,
                        "title": item.title,
                        "description": item.description,
                        "affects": list(item.affects),
                        "subjects": list(item.subjects),
                    }
                    for item in self.interventions
                ],
            },
            indent=2,
        )

    def keys(self, affects: list[str], subjects: list[str]) -> torch.Tensor:
        """(interventions, affects + subjects) multi-hot description of each intervention."""
        keys = torch.zeros(len(self.interventions), len(affects) + len(subjects))
        for row, item in enumerate(self.interventions):
            for affect in item.affects:
                if affect in affects:
                    keys[row, affects.index(affect)] = 1.0
            for subject in item.subjects or subjects:  # no subjects listed: suits every subject
                if subject in subjects:
                    keys[row, len(affects) + subjects.index(subject)] = 1.0
        return keys


class TutoringHead(nn.Module):
    """score(case, intervention) = <query(case, subject), key(intervention)>. Keys come from
    what an intervention is for (affects, subjects), so one that a school adds later is scored
    too, without retraining."""

    def __init__(
        self, dim: int, library: InterventionLibrary, affects: list[str], subjects: list[str]
    ):
        super().__init__()
        self.library = library
        self.subjects = list(subjects)
        self.register_buffer("keys", library.keys(affects, subjects), persistent=False)
        width = self.keys.shape[1]
        self.query = nn.Sequential(
            nn.Linear(dim + len(subjects), dim), nn.GELU(), nn.Linear(dim, width)
        )
        self.key_projection = nn.Linear(width, width)

    def forward(self, embedding: torch.Tensor, subject: torch.Tensor) -> torch.Tensor:
        """(B, interventions) scores; `subject` is (B, subjects) one-hot, zeros when unknown."""
        query = self.query(torch.cat([embedding, subject], dim=1))
        return query @ self.key_projection(self.keys).T
