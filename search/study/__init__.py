"""The study, a run's single truth: its storage with held writes and a waiting-trial index
(``store``), the journal and its repair (``journal``), the run lock (``lock``), the pruners
(``pruners``: the one factory; ``halving``, ``dominance``), grouped and ordered views
(``views``, ``ordering``), one objective or several (``objectives``), and ``optuna_internals``,
the one module that touches Optuna's private API. Called by the driver and results."""
