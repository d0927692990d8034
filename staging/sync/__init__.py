"""Sync to QBO, in the order the data flows:

1. ``queue``: which rows may be sent; stamping them Queued with an attempt and a priority;
2. ``lanes``: each company's lanes through the workers claim its next chunk in order and
   keep companies from waiting behind each other (the scheduling design is in lanes.py and
   docs/sync-engine.md);
3. ``push``: one chunk to QBO (lookup, adopt or create, sparse update, /batch);
4. ``outcomes``: what each row became, written under its claim's lease;
5. ``reaper``: recovers lost work (expired claims, lost lanes), nothing else;
6. ``tasks``: the Celery tasks, thin.

No import cycles: queue → lanes → push → outcomes; reaper → lanes; tasks → lanes, reaper.
"""
