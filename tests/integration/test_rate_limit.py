"""One API rate limit across web processes: two gunicorn servers on one database count a
token's requests in the one shared cache (a folder under var/ embedded, Redis where the broker
is Redis: this test runs in both of `.ci/run`'s phases), so together they allow the rate once,
not twice."""

import urllib.error
import urllib.request

from tests.integration.processes import (
    free_port,
    manage,
    pipeline_environment,
    shell,
    stopped,
    throwaway_database,
    wait_for_page,
    web_server,
)

RATE = 4

TOKEN = """
from django.contrib.auth import get_user_model
from tessera.accounts.services import create_organization, issue_api_token, set_membership
clinic = create_organization(name="Limit Clinic", slug="limit", kind="clinic", jurisdiction="US")
bridge = get_user_model().objects.create_user(username="his-bridge", password=None)
set_membership(user=bridge, organization=clinic, role="clinician")
print(issue_api_token(user=bridge, name="HIS bridge")[1])
"""


def status_of(url: str, token: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_two_web_processes_share_one_rate_limit(tmp_path):
    with throwaway_database(tmp_path) as database_url:
        env = pipeline_environment(
            tmp_path,
            database_url,
            tmp_path / "models",
            TESSERA_API_RATE=f"{RATE}/hour",
        )
        manage(env, "migrate", "--noinput")
        token = shell(env, TOKEN).split()[-1]
        ports = [free_port(), free_port()]
        servers = [web_server(env, port, tmp_path / f"web-{port}.log") for port in ports]
        try:
            for port, server in zip(ports, servers, strict=True):
                wait_for_page(f"http://127.0.0.1:{port}/login/", seconds=120, server=server)
            lists = [f"http://127.0.0.1:{port}/api/v1/patients/" for port in ports]
            answered = [status_of(lists[number % 2], token) for number in range(RATE + 2)]
        finally:
            for server in servers:
                stopped(server)
    assert answered == [200] * RATE + [429, 429], (
        f"{RATE} an hour across both processes, not {RATE} in each: {answered}"
    )
