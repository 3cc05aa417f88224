"""Entry identity and duplicates: keys scoped to a source and content hashes (``keys.py``),
canonical URLs (``canonical.py``), near-duplicate fingerprints that work on Chinese text
(``fingerprint.py``), and the rules that match an entry to another source's copy or a re-keyed
one (``matching.py``)."""
