"""Writing an organization's intervention library: each edit, retirement or import is a new
version, checked whole before it is written; the first use seeds version 1 from the library
mlcore ships."""

import json
import re
from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from mlcore.library import SHIPPED_LIBRARY, Intervention, InterventionLibrary
from mlcore.tutoring_training import Decision
from tessera.accounts.models import Organization
from tessera.records.kinds import kind_of
from tessera.refusals import RefusalCode, Refused
from tessera.text import printable_name
from tessera.tutoring.models import LibraryVersion, TutoringHead

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
MOST_INTERVENTIONS = 200
TITLE_LENGTH = 120
DESCRIPTION_LENGTH = 1000
SUBJECT_LENGTH = 64
LOWEST_GRADE, HIGHEST_GRADE = 0, 13
ONLY_SCHOOLS = "only a school keeps an intervention library"


def library_in_effect(*, organization: Organization) -> LibraryVersion:
    """The organization's newest library version; the first call writes version 1, the
    library mlcore ships."""
    newest = LibraryVersion.objects.filter(organization=organization).first()
    if newest is not None:
        return newest
    shipped = InterventionLibrary.load(SHIPPED_LIBRARY)
    version, _ = LibraryVersion.objects.get_or_create(
        organization=organization,
        number=1,
        defaults={
            "interventions": [item.to_dict() for item in shipped.interventions],
            "change": f"Started from the library Tessera ships ({shipped.version}).",
        },
    )
    return version


def save_intervention(
    *,
    organization: Organization,
    by: AbstractBaseUser | None,
    entry: dict,
    known_affects: Iterable[str],
) -> LibraryVersion:
    """A new version with `entry` added, or replacing the intervention of the same id.
    `known_affects`: those the school's model estimates ([] where none serves: those the
    library already uses)."""
    known_affects = taggable_affects(organization=organization, estimated=known_affects)
    intervention = parse_intervention(entry, known_affects=known_affects)

    def edit(current: list[Intervention]) -> tuple[list[Intervention], str]:
        ids = [item.id for item in current]
        if intervention.id in ids:
            current[ids.index(intervention.id)] = intervention
            return current, f"Edited “{intervention.title}”."
        return [*current, intervention], f"Added “{intervention.title}”."

    return _next_version(organization=organization, by=by, edit=edit)


def retire_intervention(
    *, organization: Organization, by: AbstractBaseUser | None, intervention_id: str
) -> LibraryVersion:
    """A new version without the intervention (earlier versions, and the suggestions made
    from them, keep it)."""

    def edit(current: list[Intervention]) -> tuple[list[Intervention], str]:
        kept = [item for item in current if item.id != intervention_id]
        if len(kept) == len(current):
            raise Refused(
                f"the library has no intervention “{intervention_id}”",
                code=RefusalCode.UNKNOWN_INTERVENTION,
            )
        if not kept:
            raise Refused(
                "a library needs at least one intervention: add another before retiring this one",
                code=RefusalCode.INVALID_LIBRARY,
            )
        title = next(item.title for item in current if item.id == intervention_id)
        return kept, f"Retired “{title}”."

    return _next_version(organization=organization, by=by, edit=edit)


def import_library(
    *,
    organization: Organization,
    by: AbstractBaseUser | None,
    document: str | bytes,
    known_affects: Iterable[str],
) -> LibraryVersion:
    """A new version holding exactly the interventions of `document` (`parse_library`);
    `known_affects` as for `save_intervention`."""
    interventions = parse_library(
        document,
        known_affects=taggable_affects(organization=organization, estimated=known_affects),
    )
    return _next_version(
        organization=organization,
        by=by,
        edit=lambda _: (interventions, f"Imported {len(interventions)} interventions."),
    )


def parse_library(document: str | bytes, *, known_affects: Iterable[str]) -> list[Intervention]:
    """The interventions of `document` (JSON, as the export writes it: {"interventions": [...]},
    any other field ignored), or a refusal saying, in a sentence, what is wrong with it."""
    try:
        data = json.loads(document)
    except (ValueError, UnicodeDecodeError) as error:
        raise _invalid(
            f"the file is not JSON ({error}); export a library to see the format"
        ) from error
    if not isinstance(data, dict) or not isinstance(data.get("interventions"), list):
        raise _invalid('the JSON needs an "interventions" list; export a library to see the format')
    entries = data["interventions"]
    if not entries:
        raise _invalid("the library holds no intervention")
    if len(entries) > MOST_INTERVENTIONS:
        raise _invalid(
            f"a library holds at most {MOST_INTERVENTIONS} interventions, this one {len(entries)}"
        )
    known_affects = list(known_affects)
    interventions = []
    for position, entry in enumerate(entries, start=1):
        try:
            interventions.append(parse_intervention(entry, known_affects=known_affects))
        except Refused as refusal:
            raise _invalid(f"intervention {position}: {refusal.message}") from refusal
    ids = [item.id for item in interventions]
    repeated = sorted({item for item in ids if ids.count(item) > 1})
    if repeated:
        raise _invalid(f"each intervention needs its own id; repeated: {', '.join(repeated)}")
    return interventions


def parse_intervention(entry: object, *, known_affects: Iterable[str]) -> Intervention:
    """The intervention `entry` (a dict as Intervention.to_dict writes it) describes, or a
    refusal saying, in a sentence, what is wrong with it."""
    if not isinstance(entry, dict):
        raise _invalid("each intervention is an object with an id, a title and its tags")
    unknown = set(entry) - {"id", "title", "description", "affects", "subjects", "grades"}
    if unknown:
        raise _invalid(f"unknown fields {', '.join(sorted(map(str, unknown)))}")
    identifier = entry.get("id")
    if not isinstance(identifier, str) or not ID_PATTERN.fullmatch(identifier):
        raise _invalid(
            "the id is 1 to 64 lower-case letters, digits and hyphens, starting with a letter "
            "or digit (e.g. worked-example)"
        )
    title = _text(entry.get("title"), "title", TITLE_LENGTH, required=True)
    description = _text(entry.get("description", ""), "description", DESCRIPTION_LENGTH)
    known = list(known_affects)
    affects = _tags(entry.get("affects", []), "affects")
    strange = [affect for affect in affects if affect not in known]
    if strange:
        raise _invalid(
            f"{', '.join(strange)} is not an affect the school's model estimates "
            f"({', '.join(known)})"
        )
    subjects = _tags(entry.get("subjects", []), "subjects")
    return Intervention(
        id=identifier,
        title=title,
        description=description,
        affects=tuple(affects),
        subjects=tuple(subjects),
        grades=_grades(entry.get("grades")),
    )


def _text(value: object, field: str, length: int, *, required: bool = False) -> str:
    if not isinstance(value, str):
        raise _invalid(f"the {field} is text")
    value = value.strip()
    if required and not value:
        raise _invalid(f"the {field} is empty")
    if len(value) > length:
        raise _invalid(f"the {field} is {len(value)} characters long, at most {length}")
    try:
        printable_name(value)
    except ValidationError as error:
        raise _invalid(f"the {field}: {error.messages[0]}") from error
    return value


def _tags(value: object, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
        raise _invalid(f"{field} is a list of names")
    tags = [_text(tag, field[:-1], SUBJECT_LENGTH, required=True) for tag in value]
    return list(dict.fromkeys(tags))


def _grades(value: object) -> tuple[int, int] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(grade, int) and not isinstance(grade, bool) for grade in value)
        or not LOWEST_GRADE <= value[0] <= value[1] <= HIGHEST_GRADE
    ):
        raise _invalid(
            f"grades are the lowest and the highest grade it suits, from {LOWEST_GRADE} to "
            f"{HIGHEST_GRADE}, lowest first (e.g. [3, 6]); leave them out for any grade"
        )
    return value[0], value[1]


def taggable_affects(*, organization: Organization, estimated: Iterable[str]) -> list[str]:
    """What an intervention may be tagged for: the affects the school's model estimates, or,
    where none serves (`estimated` empty), those its library already uses."""
    known = list(estimated)
    if known:
        return known
    current = library_in_effect(organization=organization)
    return sorted({affect for item in current.interventions for affect in item["affects"]})


def _invalid(message: str) -> Refused:
    return Refused(message, code=RefusalCode.INVALID_LIBRARY)


def _next_version(
    *, organization: Organization, by: AbstractBaseUser | None, edit
) -> LibraryVersion:
    """Write the version after the newest, as `edit(interventions) -> (interventions, change)`
    makes it; two edits at once are written one after the other (the organization's row is
    locked), so neither is lost."""
    if not kind_of(organization).suggests_tutoring:
        raise Refused(ONLY_SCHOOLS, code=RefusalCode.WRONG_KIND)
    with transaction.atomic():
        Organization.objects.select_for_update().get(pk=organization.pk)
        current = library_in_effect(organization=organization)
        interventions, change = edit(list(current.library.interventions))
        return LibraryVersion.objects.create(
            organization=organization,
            number=current.number + 1,
            interventions=[item.to_dict() for item in interventions],
            change=change,
            created_by=by,
        )


def record_head(
    *, organization: Organization, library: LibraryVersion, decision: Decision
) -> TutoringHead:
    """Keep the head a training run taught the organization, with the decision on it; when it
    is to be used, it replaces the one in use."""
    with transaction.atomic():
        if decision.use_it:
            TutoringHead.objects.filter(organization=organization, in_use=True).update(in_use=False)
        return TutoringHead.objects.create(
            organization=organization,
            library=library,
            weights=decision.candidate.to_dict(),
            verdicts=decision.candidate.verdicts,
            metrics=decision.metrics(),
            in_use=decision.use_it,
            decision=decision.message,
        )
