"""A live Tessera for the browser tests: `manage.py runserver` and a real worker on every queue,
sharing a throwaway database and the demo models (trained small, once per session), driven by
Playwright in Debian's Chromium (`.ci/run` installs it; Playwright's own browser download is
never used). It is set up as `make run` sets up a new user's: the same commands in their own
processes, whose output test_first_run.py reads."""

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.integration.processes import (
    REPO,
    free_port,
    pipeline_environment,
    query,
    shell,
    throwaway_database,
    wait_for_page,
    worker_process,
)

CHROMIUM = Path("/usr/bin/chromium")
# `make run`'s steps before the server starts (smaller demo models): the demo users' first
# screens, their history analysed.
FIRST_RUN = (
    ("migrate", "--noinput", "-v", "0"),
    ("train_demo_models", "--cases", "24", "--epochs", "1"),
    ("seed_demo",),
)
ARTIFACTS = REPO / "tests" / "artifacts"
PASSWORD = "correct-horse-42"

SEED = """
from django.contrib.auth import get_user_model
from django.utils import timezone
from tessera.accounts.services import create_organization, set_membership
from tessera.records.services import (
    create_encounter, create_learning_session, create_patient, create_student,
)

users = get_user_model().objects
clinic = create_organization(name="Riverside Clinic", slug="riverside", kind="clinic",
                             jurisdiction="US")
other = create_organization(name="Hilltop Clinic", slug="hilltop", kind="clinic",
                            jurisdiction="US")
school = create_organization(name="Oak School", slug="oak", kind="school", jurisdiction="EU")
for username, organization, role in (
    ("doctor", clinic, "clinician"), ("outsider", other, "clinician"),
    ("careful", clinic, "clinician"),
    ("teacher", school, "teacher"),
):
    user = users.create_user(username=username, password={password!r}, first_name=username.title())
    set_membership(user=user, organization=organization, role=role)
patient = create_patient(organization=clinic, mrn="RC-1", full_name="Ada Lovelace")
encounter = create_encounter(patient=patient, occurred_at=timezone.now(), reason="Chest pain")
student = create_student(organization=school, student_number="S-1", full_name="Ben Okri")
session = create_learning_session(student=student, occurred_at=timezone.now(),
                                  subject_area="Mathematics", title="Fractions")
print(patient.pk, encounter.pk, student.pk, session.pk)
"""


@dataclass
class LivePlatform:
    url: str
    env: dict[str, str]
    database_url: str
    patient: int
    encounter: int
    student: int
    session: int
    files: Path
    first_run: str  # what FIRST_RUN printed, on stdout and stderr

    def sql(self, statement: str) -> list[tuple]:
        return query(self.database_url, statement)


@pytest.fixture(scope="session")
def live_platform(tmp_path_factory, dicom_bytes, wav_audio) -> Iterator[LivePlatform]:
    root = tmp_path_factory.mktemp("browser")
    files = root / "files"
    files.mkdir()
    (files / "ct.dcm").write_bytes(dicom_bytes)
    (files / "broken.dcm").write_bytes(dicom_bytes[:600])
    (files / "note.txt").write_text("Chest pain on exertion for two weeks; patient is worried.\n")
    (files / "speech.wav").write_bytes(wav_audio)
    (files / "essay.txt").write_text(
        "I tried to add the fractions but I keep getting the wrong answer and I give up.\n"
    )
    (files / "answer.wav").write_bytes(wav_audio)
    with throwaway_database(root) as database_url:
        env = pipeline_environment(root, database_url, root / "models")
        first_run = "".join(printed(env, *command) for command in FIRST_RUN)
        ids = shell(env, SEED.format(password=PASSWORD)).split()
        patient, encounter, student, session = map(int, ids[-4:])
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = root / "web.log"
        with log.open("a") as output:
            server = subprocess.Popen(
                [
                    sys.executable,
                    str(REPO / "manage.py"),
                    "runserver",
                    "--noreload",
                    f"127.0.0.1:{port}",
                ],
                cwd=REPO,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:
            with worker_process(env, root / "worker.log"):
                wait_for_page(f"{url}/login/", seconds=120, server=server)
                yield LivePlatform(
                    url, env, database_url, patient, encounter, student, session, files, first_run
                )
        finally:
            server.terminate()
            server.wait(timeout=30)


def printed(env: dict[str, str], *command: str) -> str:
    """What a management command printed, on stdout and stderr, as a terminal shows it."""
    done = subprocess.run(
        [sys.executable, str(REPO / "manage.py"), *command],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout
    return done.stdout


@pytest.fixture(scope="session")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium, live_platform, request):
    """A fresh browser context per test. Every request the page makes is recorded, and the test
    fails if any went to a host other than the server, if the browser's console logged an error
    or a Content-Security-Policy report on any page the test visited (the pages must work under
    it), or if a script threw; a full-page screenshot is saved under tests/artifacts/ whatever
    the outcome."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda sent: requested.append(sent.url))
    complaints = watch_console(page)
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    server = urlsplit(live_platform.url).netloc
    strangers = {url for url in requested if urlsplit(url).netloc not in (server, "")}
    assert not strangers, f"the page reached other hosts: {sorted(strangers)}"
    assert_console_quiet(page, complaints)


def watch_console(page) -> list[str]:
    """Collect what the browser's console says is wrong on every page `page` visits: errors,
    Content-Security-Policy violations (Chromium logs some as warnings) and script errors. A
    test that provokes one on purpose (a 404 page, a refused upload) adds a piece of its text
    to `page.expected_console_errors`."""
    complaints: list[str] = []

    def heard(message) -> None:
        if message.type == "error" or "Content Security Policy" in message.text:
            complaints.append(f"{page.url}: {message.type}: {message.text}")

    page.on("console", heard)
    page.on("pageerror", lambda error: complaints.append(f"{page.url}: script error: {error}"))
    page.expected_console_errors = []
    return complaints


def assert_console_quiet(page, complaints: list[str]) -> None:
    unexpected = [
        text
        for text in complaints
        if not any(expected in text for expected in page.expected_console_errors)
    ]
    assert not unexpected, f"the browser's console complained: {unexpected}"


def snapshot(page, name: str) -> None:
    """A full-page screenshot under tests/artifacts/ of a moment in the middle of a test."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page, platform: LivePlatform, username: str, *, password: str = PASSWORD) -> None:
    page.goto(f"{platform.url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{platform.url}/")
