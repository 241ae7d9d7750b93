"""The self-hostable upload-portal server behind `portalfs serve`.

It speaks the portal API on its own and must never import from `portalfs.client`.
"""
