"""Transcripts (issue 20): real speech (espeak-ng) through the shipped Whisper tiny.en, span by
span as the `speech` queue's tasks run them, and a clear outcome for what is not English
speech."""

import io
import json
import zipfile
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from django.urls import reverse
from django.utils import timezone

from mlcore.speech import text_of
from mlcore.synthetic import wav_bytes
from tessera.accounts.models import Role
from tessera.audit.models import AuditEvent
from tessera.privacy.services import erase_subject, export_subject
from tessera.records import transcription
from tessera.records.models import MediaKind, Transcript, TranscriptStatus
from tessera.records.selectors import transcript_segments
from tessera.records.services import (
    add_media,
    create_encounter,
    create_patient,
    sync_media_encryption,
)
from tessera.records.storage import content_store
from tessera.records.uploads import UploadRejected
from tessera.reports.content.person import subject_content
from tessera.reports.services import request_report
from tests.conftest import spoken, upload
from tests.unit.api import client_for

SENTENCE = "The patient reports a cough for three weeks and some pain on the right side."


@pytest.fixture
def encounter(clinic):
    patient = create_patient(organization=clinic, mrn="SP-1", full_name="Ada Speaker")
    return create_encounter(patient=patient, occurred_at=datetime(2026, 11, 2, 9, tzinfo=UTC))


def recording(encounter, content: bytes, django_capture_on_commit_callbacks, published):
    with django_capture_on_commit_callbacks(execute=True):
        asset = add_media(
            attached_to=encounter, kind=MediaKind.SPEECH, file=upload(content), filename="r.wav"
        )
    return asset.transcript


@pytest.fixture
def published(monkeypatch):
    """The spans the services publish, in order, instead of a broker."""
    spans: list[tuple[int, float]] = []
    monkeypatch.setattr(
        transcription,
        "publish_span",
        lambda *, transcript_id, start: spans.append((transcript_id, start)),
    )
    return spans


def run_queue(published: list) -> int:
    """What the `speech` worker does: each published span, in order; returns how many ran."""
    ran = 0
    while published:
        transcript_id, start = published.pop(0)
        following = transcription.transcribe_next_span(transcript_id=transcript_id, start=start)
        if following is not None:
            published.append((transcript_id, following))
        ran += 1
    return ran


@pytest.fixture
def upload_recording(encounter, django_capture_on_commit_callbacks, published):
    def make(content: bytes) -> Transcript:
        return recording(encounter, content, django_capture_on_commit_callbacks, published)

    return make


def test_a_spoken_recording_is_queued_then_transcribed_with_timed_segments(
    upload_recording, published
):
    transcript = upload_recording(spoken(SENTENCE))
    assert transcript.status == TranscriptStatus.QUEUED
    assert published == [(transcript.pk, 0.0)]
    run_queue(published)
    transcript.refresh_from_db()
    assert transcript.status == TranscriptStatus.DONE, transcript.message
    assert transcript.speech_model == "whisper-tiny.en"
    assert transcript.language == "en"
    assert transcript.progress == 1.0
    segments = transcript_segments(transcript)
    words = " ".join(segment.text for segment in segments).lower()
    for word in ("patient", "three weeks", "pain", "right side"):
        assert word in words
    assert 0.0 <= segments[0].start < segments[-1].end <= transcript.duration_seconds + 0.5


def test_a_long_recording_goes_span_by_span_with_its_progress_known(
    upload_recording, published, settings
):
    settings.TESSERA_SPEECH_SPAN_SECONDS = 8.0
    sentences = [
        "The first sentence is about a cough.",
        "The second sentence is about a headache.",
        "The third sentence is about the weather.",
        "The fourth sentence is about sleeping badly.",
        "The fifth sentence is about the family.",
    ]
    transcript = upload_recording(spoken(" ".join(sentences), words_per_minute=140))
    assert transcript.duration_seconds > 14
    first = published.pop(0)
    following = transcription.transcribe_next_span(transcript_id=first[0], start=first[1])
    transcript.refresh_from_db()
    assert following is not None
    assert 0 < following < transcript.duration_seconds
    assert transcript.status == TranscriptStatus.RUNNING
    assert 0 < transcript.progress < 1
    # a redelivered first span changes nothing
    assert transcription.transcribe_next_span(transcript_id=first[0], start=first[1]) is None
    published.append((first[0], following))
    assert run_queue(published) >= 1
    transcript.refresh_from_db()
    assert transcript.status == TranscriptStatus.DONE
    segments = transcript_segments(transcript)
    starts = [segment.start for segment in segments]
    assert starts == sorted(starts)
    assert segments[-1].end > 12
    text = " ".join(segment.text for segment in segments).lower()
    for ordinal in ("first", "second", "third", "fourth", "fifth"):
        assert text.count(ordinal) == 1, text  # nothing lost or doubled at a span's edge


@pytest.mark.parametrize(
    "sound",
    [
        pytest.param(np.zeros(16_000 * 4, dtype=np.float32), id="silence"),
        pytest.param(
            np.random.default_rng(1).normal(0, 0.3, 16_000 * 4).astype(np.float32), id="noise"
        ),
        pytest.param(
            np.concatenate(
                [
                    0.4 * np.sin(2 * np.pi * pitch * np.arange(8000) / 16_000)
                    for pitch in (440, 523, 659, 784, 880, 784, 659, 523)
                ]
            ).astype(np.float32),
            id="music",
        ),
    ],
)
def test_silence_noise_and_music_say_no_speech_was_found(upload_recording, published, sound):
    transcript = upload_recording(wav_bytes(sound))
    run_queue(published)
    transcript.refresh_from_db()
    assert transcript.status == TranscriptStatus.NO_SPEECH
    assert transcript.message == (
        "No speech was found in this recording: it holds silence, noise or music."
    )
    assert transcript_segments(transcript) == []


def test_german_speech_is_not_passed_off_as_english(upload_recording, published):
    transcript = upload_recording(
        spoken(
            "Der Patient berichtet seit drei Wochen über trockenen Husten und Schmerzen auf "
            "der rechten Seite der Brust.",
            voice="de",
        )
    )
    run_queue(published)
    transcript.refresh_from_db()
    assert transcript.status == TranscriptStatus.NOT_UNDERSTOOD
    assert transcript.message.startswith(
        "This recording does not sound like English, the only language the installed speech "
        "model (whisper-tiny.en) understands."
    )
    assert transcript_segments(transcript) == []


def test_a_damaged_stored_recording_fails_with_a_reason(upload_recording, published):
    transcript = upload_recording(spoken(SENTENCE))
    path = content_store().path(transcript.media.sha256)
    path.write_bytes(path.read_bytes()[:-100])
    run_queue(published)
    transcript.refresh_from_db()
    assert transcript.status == TranscriptStatus.FAILED
    assert "failed its integrity check" in transcript.message


def test_an_encrypting_organization_keeps_its_transcripts_sealed(
    clinic, upload_recording, published, settings
):
    from cryptography.fernet import Fernet

    settings.TESSERA_MEDIA_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    clinic.encrypt_media = True
    clinic.save()
    transcript = upload_recording(spoken(SENTENCE))
    run_queue(published)
    transcript.refresh_from_db()
    assert transcript.encrypted
    assert transcript.status == TranscriptStatus.DONE
    assert "patient" not in transcript.sealed_segments.lower()
    assert "patient" in " ".join(s.text for s in transcript_segments(transcript)).lower()


def test_the_transcript_goes_with_its_recording_and_its_work_stops(upload_recording, published):
    transcript = upload_recording(spoken(SENTENCE))
    transcript.media.delete()
    assert not Transcript.objects.filter(pk=transcript.pk).exists()
    assert run_queue(published) == 1  # the queued span finds nothing, and publishes nothing


def test_reading_the_recording_and_writing_its_transcript_are_audited(upload_recording, published):
    transcript = upload_recording(spoken(SENTENCE))
    run_queue(published)
    events = AuditEvent.objects.filter(
        subject=f"patient:{transcript.media.visit_key.encounter.patient_id}"
    )
    assert events.filter(
        object_type="media", object_id=str(transcript.media.pk), action="view"
    ).exists()
    assert set(
        events.filter(object_type="transcript", object_id=str(transcript.pk)).values_list(
            "action", flat=True
        )
    ) == {"create", "update"}


def test_the_sweeper_resumes_a_transcription_that_stopped_moving(upload_recording, published):
    transcript = upload_recording(spoken(SENTENCE))
    published.clear()  # the broker lost the message
    Transcript.objects.filter(pk=transcript.pk).update(
        updated_at=timezone.now() - timedelta(minutes=10)
    )
    assert transcription.resume_lost_transcriptions(stale_after=timedelta(minutes=5)) == 1
    assert published == [(transcript.pk, 0.0)]
    assert transcription.resume_lost_transcriptions(stale_after=timedelta(minutes=5)) == 0
    run_queue(published)
    transcript.refresh_from_db()
    assert transcript.status == TranscriptStatus.DONE


# --- shown: the API, the page, the report, the export --------------------------------------


@pytest.fixture
def transcribed(upload_recording, published) -> Transcript:
    transcript = upload_recording(spoken(SENTENCE))
    run_queue(published)
    transcript.refresh_from_db()
    assert transcript.status == TranscriptStatus.DONE
    return transcript


@pytest.fixture
def clinician(clinic, make_user):
    return make_user("dr-speech", organization=clinic, role=Role.CLINICIAN)


def test_the_api_gives_a_recordings_transcript_with_its_segments(transcribed, clinician):
    client = client_for(clinician)
    body = client.get(f"/api/v1/media/{transcribed.media_id}/").json()
    transcript = body["transcript"]
    assert transcript["status"] == "done"
    assert transcript["speech_model"] == "whisper-tiny.en"
    assert transcript["progress"] == 1.0
    assert "right side" in transcript["text"].lower()
    assert transcript["segments"][0]["start"] == 0.0
    assert {"start", "end", "text"} == set(transcript["segments"][0])
    viewed = AuditEvent.objects.filter(object_type="transcript", object_id=str(transcribed.pk))
    assert viewed.filter(action="view", actor=clinician).exists()
    listed = client.get(f"/api/v1/media/?encounter={transcribed.media.visit_key.encounter_id}")
    assert listed.json()["results"][0]["transcript"]["text"] == transcript["text"]
    assert viewed.filter(action="list", actor=clinician).exists()


def test_a_note_has_no_transcript_in_the_api(encounter, clinician):
    note = add_media(
        attached_to=encounter, kind=MediaKind.CLINICAL_NOTE, file=upload(b"Cough."), filename="n"
    )
    assert client_for(clinician).get(f"/api/v1/media/{note.pk}/").json()["transcript"] is None


def test_the_page_shows_the_transcript_under_the_player_and_finds_what_was_said(
    client, transcribed, clinician
):
    client.force_login(clinician)
    patient = transcribed.media.visit_key.encounter.patient
    text = client.get(reverse("patient", args=[patient.pk])).content.decode()
    player = text.index("<audio")
    shown = text.index("What was said", player)
    assert 'class="segment" data-seek="0.0"' in text[shown:]
    assert "right side" in text[shown:].lower()
    assert AuditEvent.objects.filter(
        object_type="transcript", action="view", actor=clinician
    ).exists()

    found = client.get(reverse("patient", args=[patient.pk]), {"said": "Right SIDE"})
    matches = found.content.decode()
    matches = matches[matches.index('class="said-matches"') :]
    assert f"#visit-encounter-{transcribed.media.visit_key.encounter_id}" in matches
    assert "at 0:00" in matches
    missing = client.get(reverse("patient", args=[patient.pk]), {"said": "banana"})
    assert "has “banana” in its transcript" in missing.content.decode().replace("&quot;", '"')


def test_a_transcript_being_made_shows_its_progress_and_polls(client, transcribed, clinician):
    Transcript.objects.filter(pk=transcribed.pk).update(
        status=TranscriptStatus.RUNNING, transcribed_seconds=transcribed.duration_seconds / 2
    )
    client.force_login(clinician)
    part = client.get(reverse("media_transcript", args=[transcribed.media_id])).content.decode()
    assert "Being transcribed: 50%" in part
    assert 'hx-trigger="every 3s"' in part


def test_someone_of_another_organization_gets_no_transcript(
    client, transcribed, other_clinic, make_user
):
    stranger = make_user("stranger", organization=other_clinic, role=Role.CLINICIAN)
    client.force_login(stranger)
    assert client.get(reverse("media_transcript", args=[transcribed.media_id])).status_code == 404
    assert client_for(stranger).get(f"/api/v1/media/{transcribed.media_id}/").status_code == 404


def test_the_person_report_says_what_was_said(transcribed, clinician):
    patient = transcribed.media.visit_key.encounter.patient
    report = request_report(
        organization=patient.organization,
        subject=patient,
        requested_by=clinician,
        period_start=date(2026, 11, 1),
    )
    content = subject_content(report)
    [said] = [table for table in content.tables if table.title == "What was said"]
    assert "right side" in said.rows[0][2].lower()
    assert "whisper-tiny.en" in said.note


def test_the_export_holds_the_transcript_and_erasure_takes_it(transcribed, clinician):
    patient = transcribed.media.visit_key.encounter.patient
    with zipfile.ZipFile(io.BytesIO(export_subject(subject=patient))) as archive:
        document = json.loads(archive.read("subject.json"))
    [recording] = document["visits"][0]["files"]
    assert recording["transcript"]["status"] == "done"
    assert "right side" in recording["transcript"]["segments"][0]["text"].lower()
    erase_subject(subject=patient, erased_by=clinician)
    assert not Transcript.objects.exists()


def test_a_corrupt_recording_is_refused_at_upload_with_nothing_queued(encounter, published):
    clip = spoken(SENTENCE)
    with pytest.raises(UploadRejected) as refused:
        add_media(
            attached_to=encounter,
            kind=MediaKind.SPEECH,
            file=upload(clip[:44] + bytes(reversed(clip[44:2000]))),
            filename="r.wav",
        )
    assert refused.value.message
    assert not Transcript.objects.exists()
    assert published == []


def test_turning_encryption_on_and_rotating_keys_reseals_transcripts(clinic, transcribed, settings):
    from cryptography.fernet import Fernet

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.TESSERA_MEDIA_ENCRYPTION_KEYS = [old]
    clinic.encrypt_media = True
    clinic.save()
    sync_media_encryption()
    transcribed.refresh_from_db()
    assert transcribed.encrypted
    assert "patient" not in transcribed.sealed_segments.lower()
    settings.TESSERA_MEDIA_ENCRYPTION_KEYS = [new, old]
    sync_media_encryption(rotate=True)
    settings.TESSERA_MEDIA_ENCRYPTION_KEYS = [new]
    transcribed.refresh_from_db()
    assert "right side" in text_of(transcript_segments(transcribed)).lower()
    clinic.encrypt_media = False
    clinic.save()
    sync_media_encryption()
    transcribed.refresh_from_db()
    assert not transcribed.encrypted
    assert "right side" in transcribed.sealed_segments.lower()


def test_a_recording_is_served_in_byte_ranges_so_a_player_can_seek(client, transcribed, clinician):
    client.force_login(clinician)
    url = reverse("media_file", args=[transcribed.media_id])
    whole = client.get(url)
    content = b"".join(whole.streaming_content)
    assert whole["Accept-Ranges"] == "bytes"
    size = len(content)
    part = client.get(url, HTTP_RANGE="bytes=100-199")
    assert part.status_code == 206
    assert part["Content-Range"] == f"bytes 100-199/{size}"
    assert part.content == content[100:200]
    assert client.get(url, HTTP_RANGE="bytes=-10").content == content[-10:]
    assert client.get(url, HTTP_RANGE=f"bytes={size - 5}-").content == content[-5:]
    for unusable in (f"bytes={size}-", "bytes=50-10", "bytes=0-1,5-6", "pages=1-2"):
        assert client.get(url, HTTP_RANGE=unusable).status_code == 200
    downloads = AuditEvent.objects.filter(
        object_type="media", object_id=str(transcribed.media_id), action="download"
    )
    assert downloads.count() == 8, "every read of the file is logged, parts too"
