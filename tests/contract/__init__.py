"""The server against the API contract: edgeimpulse-api models and the seed client."""
