"""Helpers of the API tests: a client holding a token, and what every problem response has."""

import json

from rest_framework.test import APIClient

from tessera.accounts.services import issue_api_token

PROBLEM = "application/problem+json"


def client_for(user, *, scheme: str = "Bearer") -> APIClient:
    client = APIClient()
    if user is not None:
        _, key = issue_api_token(user=user, name="tests")
        client.credentials(HTTP_AUTHORIZATION=f"{scheme} {key}")
    return client


def assert_problem(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith(PROBLEM)
    body = json.loads(response.content)
    assert body["status"] == status
    assert {"type", "title", "detail"} <= set(body)
    if code:
        assert body["type"] == f"urn:tessera:problem:{code}", body
    return body
