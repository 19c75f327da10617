"""The driver: a run's pipeline (``plan``, ``runner``, ``rundata``, ``finish``), Ray and the
Tuner (``session``, ``tuner``, ``cluster``, ``resources``), the study as Tune's searcher and
scheduler (``bridge`` decides, ``tune_side`` speaks Tune), packs (``packer``, ``control``), a run's
stop (``stopping``), MLflow (``tracking``) and ``search train`` (``train_command``). Called by the
Python API; logs through the ``search`` logger, never prints."""
