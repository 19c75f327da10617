"""Files: a run dir's names (``rundir``), atomic writes (``atomic``), path checks
(``paths``), remote storage by URI (``remote``) and bounded parsing of JSON and YAML (``parse``).
The ground floor: every layer above reads and writes files through here."""
