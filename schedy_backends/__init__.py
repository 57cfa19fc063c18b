"""Schedy's built-in storage backends, each a plugin registered like third-party ones."""
