"""The HTTP routes: the /v1 portal API (routes.py) and the local backend's /storage
endpoints (blobs.py), with the validation of the paths clients send (names.py)."""
