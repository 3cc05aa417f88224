"""Fetching from the real web: the HTTP client with retries, limits and politeness
(``client.py``) and the URL policy that says which addresses may be reached and which URLs are
published (``urls.py``)."""
