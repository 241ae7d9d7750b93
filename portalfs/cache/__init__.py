"""Caches of listings and file bytes; they take fetch callables, never the client itself."""
