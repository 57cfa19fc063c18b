"""Schedy's built-in schedulers, each a plugin registered like third-party ones."""
