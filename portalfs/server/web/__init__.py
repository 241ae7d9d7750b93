"""Pages for browsers (page.py: the page behind a shareable portal link)."""
