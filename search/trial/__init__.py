"""One trial: the Tune trainable (``trainable``), the training loop over one config or a pack
(``train``, ``packs``, ``members``, ``optim``), and what the trainable and the driver share: the
typed messages between them (``protocol``), the data fidelity (``fidelity``) and a trial's
training settings (``train_config``). The driver runs the trainable; ``search train`` calls the
loop directly."""
