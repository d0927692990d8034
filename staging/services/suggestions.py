"""Which QBO customer an unmapped project most likely belongs to, and why.

A suggestion is never applied by itself: it is shown in the row's QBO Customer cell and at
the top of its picker, and becomes a mapping only when a person confirms it (one row, or
*Map selected…* for many). The evidence, strongest first:

1. **Same name**: a customer whose name equals the Linarc client's, compared the way QBO
   compares names (case and inner spaces ignored, ``qbo_client.names``).
2. **Same client, already mapped**: other projects of the same Linarc client are mapped to
   one customer (the most common one wins).
3. **Close name**: the most alike customer name, scored with RapidFuzz's ``WRatio``
   (https://rapidfuzz.github.io/RapidFuzz/Usage/fuzz.html#wratio) on lower-cased
   alphanumerics, when it scores at least :data:`CLOSE_SCORE` ("Ridgeline Brewing Co." and
   "Ridgeline Brewing Company" score 89; "Lincoln Heights Housing Authority" and "Lincoln
   Heights Dental" 86, and are not suggested).

Only active top-level customers that are not another project's QBO job are suggested: the
ones the mapping service accepts.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Count, QuerySet
from rapidfuzz import fuzz, process, utils

from integrations.models import QboCustomer
from qbo_client.names import normalize_for_compare
from staging.models import StagedProject

CLOSE_SCORE = 88
EXACT, SIBLING, CLOSE = "exact", "sibling", "close"


@dataclass(frozen=True)
class Suggestion:
    customer_id: int
    display_name: str
    kind: str  # EXACT, SIBLING or CLOSE
    reason: str  # a sentence for the user, starting with a capital
    score: int  # 100 for a same name; the share of siblings, or the name score
    qbo_id: str = ""

    @property
    def differs_from_client(self) -> bool:
        """The customer's name is not the Linarc client's: the confirmation says so."""
        return self.kind != EXACT


def client_key(client_name: str) -> str:
    return normalize_for_compare(client_name or "")


def suggestions_for(*, company_id: int, projects: Iterable[StagedProject]) -> dict[int, Suggestion]:
    """Project pk → its best suggestion, for the unmapped projects that have one."""
    unmapped = [p for p in projects if p.qbo_customer_id is None]
    names = {p.client_name for p in unmapped if client_key(p.client_name)}
    by_key = client_suggestions(company_id=company_id, client_names=names)
    found = {p.pk: by_key.get(client_key(p.client_name)) for p in unmapped}
    return {pk: s for pk, s in found.items() if s is not None}


def client_suggestions(*, company_id: int, client_names: Iterable[str]) -> dict[str, Suggestion]:
    """Normalised client name → the best suggestion for it. At most five queries, each
    served by an index, whatever the number of names (a page's rows, or 10,000 selected)."""
    names: dict[str, set[str]] = defaultdict(set)  # key → the client names as stored
    for name in client_names:
        if key := client_key(name):
            names[key].add(name)
    if not names:
        return {}
    candidates = _candidates(company_id)
    # Same names through the (company, is_job, active, search_name) index first: on a page
    # of known clients nothing else is read.
    found = _exact(names, _rows(candidates.filter(search_name__in=set(names))))
    pending = {k: v for k, v in names.items() if k not in found}
    if pending:
        found.update(_siblings(company_id, pending, candidates))
        pending = {k: v for k, v in pending.items() if k not in found}
    if pending:
        customers = _rows(candidates)
        found.update(_exact(pending, customers))  # names that differ in their spaces only
        pending = {k: v for k, v in pending.items() if k not in found}
        found.update(_close(pending, customers))
    return _without_jobs(company_id, found)


_Customer = tuple[int, str, str]  # pk, display_name, qbo_id


def _candidates(company_id: int) -> QuerySet[QboCustomer]:
    """The customers a project may be mapped to: active and top-level."""
    return QboCustomer.objects.filter(
        company_id=company_id, is_job=False, active=True, deleted_in_qbo=False
    )


def _rows(customers: QuerySet[QboCustomer]) -> list[_Customer]:
    return list(customers.order_by("search_name", "pk").values_list("pk", "display_name", "qbo_id"))


def _exact(names: dict[str, set[str]], customers: list[_Customer]) -> dict[str, Suggestion]:
    found: dict[str, Suggestion] = {}
    for pk, display_name, qbo_id in customers:
        key = client_key(display_name)
        if key in names and key not in found:
            found[key] = Suggestion(
                pk, display_name, EXACT, "Same name as the Linarc client", 100, qbo_id
            )
    return found


def _siblings(
    company_id: int, pending: dict[str, set[str]], candidates: QuerySet[QboCustomer]
) -> dict[str, Suggestion]:
    """The customer most of the client's mapped projects have. The count reads the partial
    index on (company, client_name, qbo_customer) of mapped rows only."""
    mapped = (
        StagedProject.objects.filter(
            company_id=company_id,
            client_name__in=set().union(*pending.values()),
            qbo_customer__isnull=False,
        )
        .values_list("client_name", "qbo_customer_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    votes: dict[str, Counter[int]] = defaultdict(Counter)
    for client_name, customer_id, count in mapped:
        votes[client_key(client_name)][customer_id] += count
    usable = {
        pk: (name, qbo_id)
        for pk, name, qbo_id in _rows(
            candidates.filter(pk__in={c for counter in votes.values() for c in counter})
        )
    }
    found = {}
    for key, counter in votes.items():
        ranked = [(pk, n) for pk, n in counter.most_common() if pk in usable]
        if not ranked:
            continue
        customer_id, count = ranked[0]
        client = min(pending[key])
        reason = (
            f"{count} other project{'s' if count != 1 else ''} of “{client}” "
            f"{'are' if count != 1 else 'is'} mapped to it"
        )
        share = round(100 * count / sum(counter.values()))
        name, qbo_id = usable[customer_id]
        found[key] = Suggestion(customer_id, name, SIBLING, reason, share, qbo_id)
    return found


def _close(pending: dict[str, set[str]], customers: list[_Customer]) -> dict[str, Suggestion]:
    if not pending or not customers:
        return {}
    choices = {index: utils.default_process(c[1]) for index, c in enumerate(customers)}
    found = {}
    for key, raw_names in pending.items():
        raw = min(raw_names).strip()
        best = process.extractOne(
            utils.default_process(raw),
            choices,
            scorer=fuzz.WRatio,
            processor=None,
            score_cutoff=CLOSE_SCORE,
        )
        if best is None:
            continue
        _choice, score, index = best
        pk, name, qbo_id = customers[index]
        reason = f"Close to the Linarc client name “{raw}” ({round(score)} % alike)"
        found[key] = Suggestion(pk, name, CLOSE, reason, round(score), qbo_id)
    return found


def _without_jobs(company_id: int, found: dict[str, Suggestion]) -> dict[str, Suggestion]:
    """Drop a customer that is another project's QBO job (the cache can list a job before
    its parent is known); the mapping service would refuse it. One read of the unique
    (company, qbo_record_id) index."""
    qbo_ids = {s.qbo_id for s in found.values()}
    if not qbo_ids:
        return found
    held = set(
        StagedProject.objects.filter(company_id=company_id, qbo_record_id__in=qbo_ids)
        .order_by()
        .values_list("qbo_record_id", flat=True)
    )
    return {k: s for k, s in found.items() if s.qbo_id not in held}
