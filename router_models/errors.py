"""The model package's one user error: a config, or a setting, that does not describe a
buildable model. A ValueError, so callers that catch those keep working; everything else a
constructor raises is a bug and surfaces as one."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config (dict or config.json) that does not describe a buildable model, or a model
    setting out of range; the message names the setting and shows the bad value."""
