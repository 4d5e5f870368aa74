"""Writes for webhooks: subscriptions, events turned into deliveries (published when the event's
transaction commits), and delivery attempts with exponential backoff.

A delivery is at least once: a receiver that answers 2xx after a network error may see the same
`Tessera-Delivery` id again, and should de-duplicate on it."""

import json
import secrets
import time
import urllib.error
import urllib.request
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from tessera.accounts.models import Organization
from tessera.celery import TaskName, enqueue
from tessera.http_client import NO_REDIRECTS
from tessera.webhooks.models import (
    DeliveryStatus,
    Event,
    WebhookDelivery,
    WebhookSubscription,
)
from tessera.webhooks.signing import SIGNATURE_HEADER, signature

USER_AGENT = "Tessera-Webhooks/1"


def _new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def create_subscription(
    *,
    organization: Organization,
    url: str,
    events: list[str],
    created_by: AbstractBaseUser | None,
    description: str = "",
) -> WebhookSubscription:
    subscription = WebhookSubscription(
        organization=organization,
        url=url,
        events=sorted(set(events)),
        secret=_new_secret(),
        description=description,
        created_by=created_by,
    )
    subscription.full_clean()
    subscription.save()
    return subscription


def change_subscription(
    *, subscription: WebhookSubscription, changes: dict[str, object]
) -> WebhookSubscription:
    """A change of URL, events, description or whether it is active, checked as a new one is."""
    for field, value in changes.items():
        setattr(subscription, field, sorted(set(value)) if field == "events" else value)
    subscription.full_clean()
    subscription.save()
    return subscription


def rotate_secret(*, subscription: WebhookSubscription) -> WebhookSubscription:
    subscription.secret = _new_secret()
    subscription.save(update_fields=["secret"])
    return subscription


def emit(*, organization_id: int, event: str, data: dict) -> list[WebhookDelivery]:
    """Record a delivery of `event` for each active subscription that wants it, and publish them
    once the caller's transaction commits (an event rolled back is never sent)."""
    subscriptions = WebhookSubscription.objects.filter(
        organization_id=organization_id, is_active=True
    )
    wanting = [s for s in subscriptions if event in s.events]  # SQLite has no JSON "contains"
    return _record(wanting, event=event, data=data)


def send_ping(*, subscription: WebhookSubscription) -> WebhookDelivery:
    """A test delivery to one subscription, whatever events it chose."""
    (delivery,) = _record([subscription], event=Event.PING, data={"subscription": subscription.pk})
    return delivery


def _record(
    subscriptions: list[WebhookSubscription], *, event: str, data: dict
) -> list[WebhookDelivery]:
    now = timezone.now()
    deliveries = []
    for subscription in subscriptions:
        delivery = WebhookDelivery(subscription=subscription, event=event, next_attempt_at=now)
        delivery.payload = {
            "id": str(delivery.id),
            "type": event,
            "created_at": now.isoformat(),
            "organization": subscription.organization_id,
            "data": data,
        }
        deliveries.append(delivery)
    WebhookDelivery.objects.bulk_create(deliveries)
    for delivery in deliveries:
        transaction.on_commit(partial(publish, delivery_id=delivery.pk))
    return deliveries


def publish(*, delivery_id, countdown: float = 0) -> None:
    enqueue(TaskName.DELIVER_WEBHOOK, str(delivery_id), countdown=countdown)


def retry_delay(attempt: int) -> float:
    """Seconds before the next attempt: doubling from the base, at most an hour."""
    return min(settings.TESSERA_WEBHOOK_BACKOFF_SECONDS * 2 ** max(0, attempt - 1), 3600.0)


def _claim(delivery_id) -> WebhookDelivery | None:
    """Take a due, pending delivery for one attempt. Until the attempt ends, `next_attempt_at`
    lies past the request timeout, so a duplicate message finds it not due and does nothing."""
    now = timezone.now()
    busy_until = now + timedelta(seconds=settings.TESSERA_WEBHOOK_TIMEOUT_SECONDS + 30)
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now
    ).update(attempts=F("attempts") + 1, next_attempt_at=busy_until)
    if not claimed:
        return None
    # None if its subscription was deleted meanwhile (the deliveries go with it)
    return WebhookDelivery.objects.select_related("subscription").filter(pk=delivery_id).first()


def attempt_delivery(*, delivery_id) -> float | None:
    """POST the delivery once. Returns the seconds to wait before trying again, or None when
    there is nothing more to do (delivered, given up, or not due)."""
    delivery = _claim(delivery_id)
    if delivery is None:
        return None
    subscription = delivery.subscription
    if not subscription.is_active:
        _finish(delivery, status=DeliveryStatus.FAILED, error="the subscription was disabled")
        return None
    status_code, error = _post(delivery)
    if status_code is not None and 200 <= status_code < 300:
        _finish(delivery, status=DeliveryStatus.DELIVERED, status_code=status_code)
        return None
    error = error or f"the receiver answered HTTP {status_code}"
    if delivery.attempts >= settings.TESSERA_WEBHOOK_MAX_ATTEMPTS:
        _finish(
            delivery,
            status=DeliveryStatus.FAILED,
            status_code=status_code,
            error=f"{error} (gave up after {delivery.attempts} attempts)",
        )
        return None
    delay = retry_delay(delivery.attempts)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        next_attempt_at=timezone.now() + timedelta(seconds=delay),
        last_status_code=status_code,
        last_error=error[:500],
    )
    return delay


def _finish(
    delivery: WebhookDelivery, *, status: str, status_code: int | None = None, error: str = ""
) -> None:
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=status,
        last_status_code=status_code,
        last_error=error[:500],
        delivered_at=timezone.now() if status == DeliveryStatus.DELIVERED else None,
    )


def _post(delivery: WebhookDelivery) -> tuple[int | None, str]:
    """(HTTP status, "") when the receiver answered, (None, why) when it could not be reached.
    The receiver's body is never read into the log: it is not ours to keep."""
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    timestamp = int(time.time())
    request = urllib.request.Request(
        delivery.subscription.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Tessera-Event": delivery.event,
            "Tessera-Delivery": str(delivery.pk),
            SIGNATURE_HEADER: signature(
                secret=delivery.subscription.secret, timestamp=timestamp, body=body
            ),
        },
    )
    try:
        with NO_REDIRECTS.open(
            request, timeout=settings.TESSERA_WEBHOOK_TIMEOUT_SECONDS
        ) as response:
            return response.status, ""
    except urllib.error.HTTPError as error:
        return error.code, ""
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        return None, f"the receiver could not be reached: {reason}"


def resend_overdue(*, grace: timedelta) -> int:
    """Sweeper: publish again the pending deliveries overdue by more than `grace` (their message
    was lost, say when Redis restarted). The claim keeps a surviving message from a second send."""
    overdue = list(
        WebhookDelivery.objects.filter(
            status=DeliveryStatus.PENDING, next_attempt_at__lt=timezone.now() - grace
        ).values_list("pk", flat=True)[:1000]
    )
    for delivery_id in overdue:
        publish(delivery_id=delivery_id)
    return len(overdue)
