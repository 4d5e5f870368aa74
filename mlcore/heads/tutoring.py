import torch
from torch import nn

from mlcore.library import InterventionLibrary


def library_keys(
    library: InterventionLibrary, affects: list[str], subjects: list[str]
) -> torch.Tensor:
    """(interventions, affects + subjects) multi-hot description of each intervention."""
    keys = torch.zeros(len(library.interventions), len(affects) + len(subjects))
    for row, item in enumerate(library.interventions):
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
        self.register_buffer("keys", library_keys(library, affects, subjects), persistent=False)
        width = self.keys.shape[1]
        self.query = nn.Sequential(
            nn.Linear(dim + len(subjects), dim), nn.GELU(), nn.Linear(dim, width)
        )
        self.key_projection = nn.Linear(width, width)

    def forward(self, embedding: torch.Tensor, subject: torch.Tensor) -> torch.Tensor:
        """(B, interventions) scores; `subject` is (B, subjects) one-hot, zeros when unknown."""
        query = self.query(torch.cat([embedding, subject], dim=1))
        return query @ self.key_projection(self.keys).T
