"""What a run leaves: its records (``records``: run.json and what a resume must match), the
exported routers and config.json (``export``, ``front_export``), baselines as routers
(``baselines``), stacking (``ensemble``), the routing table (``routing_table``) and the report
(``report``, ``front_report``). Called by the driver at a run's end and by ``search report``;
reads the study through ``search.study``."""
