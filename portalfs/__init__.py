"""portalfs: upload portals as a directory, a command line and a self-hostable server."""

__version__ = "0.1.0"
