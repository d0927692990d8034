"""The QBO webhooks endpoint: verify, store, answer at once; work goes to Celery.

Every answer is JSON, errors included: Intuit's delivery logs show the body, and an HTML
page there helps no one. Errors raised before this view runs (an unknown Host, a crash) get
their JSON from the site's handler400 / handler500 (staging/error_views.py).
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from integrations.services.webhooks import InvalidWebhook, webhook_receive


@csrf_exempt  # Intuit cannot send a CSRF token; the HMAC signature authenticates it instead
def qbo_webhook(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        response = JsonResponse({"error": "Intuit delivers webhooks with POST."}, status=405)
        response["Allow"] = "POST"
        return response
    try:
        # Django refuses a body over DATA_UPLOAD_MAX_MEMORY_SIZE from its Content-Length
        # alone, before reading any of it.
        body = request.body
    except RequestDataTooBig:
        return JsonResponse({"error": _too_large_message()}, status=413)
    try:
        accepted = webhook_receive(
            body=body,
            signature=request.headers.get("intuit-signature", ""),
            verifier_token=settings.QBO_WEBHOOK_VERIFIER_TOKEN or "",
        )
    except InvalidWebhook as exc:
        return JsonResponse({"error": str(exc)}, status=exc.status)
    return JsonResponse({"accepted": accepted})


def _too_large_message() -> str:
    limit_mb = (settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0) / 2**20
    return f"The webhook body is larger than {limit_mb:g} MB."
