"""Imports from Linarc into staging (*Import New Items*, *Import All*, *Import Selected* and
the sync rules' scheduled pull), in the order the data flows:

1. ``runs``: an import is refused or recorded as a pending Run and sent to a worker by task
   name; the worker claims it (a conditional UPDATE), counts its progress, finishes it;
   lost runs are failed;
2. ``pages``: the claimed run reads Linarc one page at a time and stages each page in a
   transaction of its own (a Linarc failure on page 7 keeps pages 1-6);
3. ``writer``: one page's upsert on ``(company, linarc_id)``, with a constant number of
   queries per page: unchanged projects are skipped by content hash, so running an import
   again writes nothing;
4. ``rows``: what a record becomes in its staged row (columns, diff, status, history text),
   with ``junk``: a junk value in one field of a staged row keeps the staged value;
5. ``new_rows``: the page's new projects and their *Imported* history (one statement on
   PostgreSQL);
6. ``deletions``: after a complete listing, staged projects Linarc no longer lists are
   flagged, with one bit of memory per staged row;
7. ``tasks``: the Celery tasks, thin.

Reads for the views are in ``staging.selectors.runs``.

No import cycles: tasks → pages → runs, deletions, writer; runs → writer; deletions →
writer; writer → new_rows, rows; new_rows → rows → junk. Nothing here imports ``tasks``.
"""
