"""Accounts and portals: the state file (store.py), first start (bootstrap.py) and
administration of a data folder (admin.py)."""
