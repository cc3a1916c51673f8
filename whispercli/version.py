"""The package version: one place, read by hatchling (pyproject.toml) and by ``--version``."""

__version__ = "0.1.0"
