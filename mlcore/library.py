"""A curated library of tutoring interventions: what each is, which affects, subjects and
grades it suits. Plain data, no torch: the web platform keeps a school's library in its
database in this shape, and mlcore.suggestions ranks one for a session."""

import json
from dataclasses import dataclass
from pathlib import Path

from mlcore.errors import ConfigError

# The library mlcore ships: what a school starts from, and what the demo model trains with.
SHIPPED_LIBRARY = Path(__file__).parent / "resources" / "interventions.json"


@dataclass(frozen=True)
class Intervention:
    id: str
    title: str
    description: str
    affects: tuple[str, ...]  # empty: any affect
    subjects: tuple[str, ...]  # empty: any subject
    grades: tuple[int, int] | None = None  # the lowest and highest grade it suits; None: any

    def to_dict(self) -> dict:
        entry = {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "affects": list(self.affects),
            "subjects": list(self.subjects),
        }
        if self.grades is not None:
            entry["grades"] = list(self.grades)
        return entry


@dataclass(frozen=True)
class InterventionLibrary:
    version: str
    interventions: tuple[Intervention, ...]

    @classmethod
    def load(cls, path: str | Path) -> "InterventionLibrary":
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as error:
            raise ConfigError(f"intervention library {path} is not usable: {error}") from error
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "") -> "InterventionLibrary":
        """The library `data` (as `to_dict` writes it) describes; ConfigError naming `source`
        where it cannot be one."""
        where = f"intervention library {source}".rstrip()
        try:
            items = tuple(
                Intervention(
                    id=item["id"],
                    title=item["title"],
                    description=item.get("description", ""),
                    affects=tuple(item.get("affects", ())),
                    subjects=tuple(item.get("subjects", ())),
                    grades=_grades(item.get("grades")),
                )
                for item in data["interventions"]
            )
            library = cls(version=str(data["version"]), interventions=items)
        except (ValueError, KeyError, TypeError) as error:
            raise ConfigError(f"{where} is not usable: {error}") from error
        ids = [item.id for item in items]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"{where} repeats an id")
        return library

    def to_dict(self) -> dict:
        return {
            "version": self.version,
            "interventions": [item.to_dict() for item in self.interventions],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def _grades(value: list | None) -> tuple[int, int] | None:
    if value is None:
        return None
    low, high = (int(grade) for grade in value)
    if low > high:
        raise ValueError(f"grades {low}-{high}: the lowest comes first")
    return low, high
