"""Sync to QBO, in the order the data flows:

1. ``queue``: which rows may be sent; stamping them Queued with an attempt and a priority;
2. ``lanes``: each company's lanes through the workers claim its next chunk in order and
   keep companies from waiting behind each other (the scheduling design is in lanes.py and
   docs/sync-engine.md);
3. ``push``: one chunk to QBO: each row's fields, the name look-up (adopt or flag), errors
   for the whole chunk; with ``chunk`` (a row's work, requestids, the Outcome of each
   answer) and ``send`` (one /batch, or single requests, and what each answer means);
4. ``outcomes``: what each row became, written under its claim's lease; rows given back
   after a transient error, with the backoff of ``retry`` (the one retry policy);
5. ``reaper``: recovers lost work (expired claims, lost lanes), nothing else;
6. ``tasks``: the Celery tasks, thin.

No import cycles: queue → lanes → push → send → chunk → outcomes → retry;
reaper → lanes; tasks → lanes, reaper. Nothing here imports the tasks: a lane sends its next
message by task name.
"""
