"""The QBO webhooks endpoint: verify, store, answer at once; work goes to Celery."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from integrations.services.webhooks import InvalidWebhook, webhook_receive


@csrf_exempt  # Intuit cannot send a CSRF token; the HMAC signature authenticates it instead
@require_POST
def qbo_webhook(request: HttpRequest) -> HttpResponse:
    try:
        new = webhook_receive(
            body=request.body,
            signature=request.headers.get("intuit-signature", ""),
            verifier_token=settings.QBO_WEBHOOK_VERIFIER_TOKEN or "",
        )
    except InvalidWebhook as exc:
        status = 401 if "signature" in str(exc) else 400
        return JsonResponse({"error": str(exc)}, status=status)
    return JsonResponse({"accepted": len(new)})
