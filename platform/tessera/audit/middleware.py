from tessera.audit.context import acting_as, actor_for_request


class AuditContextMiddleware:
    """Makes the signed-in user (and their address) the actor of everything this request
    reads or writes. Goes after AuthenticationMiddleware."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with acting_as(actor_for_request(request)):
            return self.get_response(request)
