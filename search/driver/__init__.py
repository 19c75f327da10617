"""The driver: Ray start-up, the Tuner, the Optuna study behind it, storage of trial artifacts."""
