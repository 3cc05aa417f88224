"""Entry content: cleaning HTML before it is stored (``clean.py``), serializing HTML
(``markup.py``) and decoding bytes to text by their declared or detected charset (``charset.py``)."""
