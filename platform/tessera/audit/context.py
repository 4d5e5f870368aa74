"""Who is acting right now: set once per request (middleware, then the API's token
authentication) or per Celery task, read by everything that writes an audit event."""

import ipaddress
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, replace

from django.conf import settings
from django.http import HttpRequest

from tessera.audit.models import AuditEvent

Channel = AuditEvent.Channel


@dataclass(frozen=True)
class Actor:
    name: str
    channel: str
    user_id: int | None = None
    address: str | None = None
    via: str = ""


SYSTEM = Actor(name="system", channel=Channel.SYSTEM)
_current: ContextVar[Actor] = ContextVar("tessera_audit_actor", default=SYSTEM)


def current_actor() -> Actor:
    return _current.get()


def enter(actor: Actor) -> Token:
    return _current.set(actor)


def leave(token: Token) -> None:
    try:
        _current.reset(token)
    except ValueError:  # set in another context (a thread pool's worker): start afresh
        _current.set(SYSTEM)


@contextmanager
def acting_as(actor: Actor):
    token = enter(actor)
    try:
        yield actor
    finally:
        leave(token)


def actor_for_request(request: HttpRequest) -> Actor:
    path = request.path
    channel = (
        Channel.API
        if path.startswith("/api/")
        else Channel.ADMIN
        if path.startswith("/admin/")
        else Channel.PAGE
    )
    user = getattr(request, "user", None)
    signed_in = user is not None and user.is_authenticated
    return Actor(
        name=user.get_username() if signed_in else "anonymous",
        channel=channel,
        user_id=user.pk if signed_in else None,
        address=client_address(request),
        via=path[:200],
    )


def bind_user(user) -> None:
    """The API authenticates in the view, after the middleware set the anonymous actor."""
    _current.set(replace(_current.get(), name=user.get_username(), user_id=user.pk))


def client_address(request: HttpRequest) -> str | None:
    """The client's address: the connection's peer, or — behind TESSERA_TRUSTED_PROXIES proxies
    — the address the outermost of ours saw. Entries a client wrote itself into
    X-Forwarded-For (left of those our proxies appended) are never believed."""
    proxies = settings.TESSERA_TRUSTED_PROXIES
    address = request.META.get("REMOTE_ADDR", "")
    if proxies:
        forwarded = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [hop for hop in forwarded if hop]
        if len(forwarded) >= proxies:
            address = forwarded[-proxies]
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None
