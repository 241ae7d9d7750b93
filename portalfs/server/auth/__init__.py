"""Who may do what: portal tokens and JWTs (access.py), signed storage URLs (signing.py)."""
