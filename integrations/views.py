from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from integrations.models import Membership
from integrations.tenancy import SESSION_KEY


@login_required
@require_POST
def switch_company(request: HttpRequest) -> HttpResponse:
    try:
        company_id = int(request.POST.get("company", ""))
    except ValueError:
        raise Http404("No such company.") from None
    if not 0 < company_id < 2**63:  # SQLite cannot even compare a larger number
        raise Http404("No such company.")
    user = request.user
    if (
        not user.is_authenticated
        or not Membership.objects.filter(user=user, company_id=company_id).exists()
    ):
        raise Http404("No such company.")
    request.session[SESSION_KEY] = company_id
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "/"
    return redirect(target)
