"""Presentation: what the selectors read (staging.selectors), shaped for a page, next to
the templates that show it. Escaping, labels, CSV cell safety and redaction live here,
never in the reads:

* ``project_rows``: the Projects list's rows, every cell escaped once in Python (the speed
  of the list's render depends on it);
* ``history_csv``: the Change History download, its cells safe from spreadsheet formulas;
* ``json_script``: the Json Script drawer, credentials redacted;
* ``import_runs``: an import run's counts as the run summary lists them.
"""
