"""Tests of the portal server (portalfs.server) over real HTTP on loopback."""
