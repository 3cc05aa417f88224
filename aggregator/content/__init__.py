"""Entry content: cleaning HTML before it is stored (``clean.py``, nh3), the text, first image and
excerpt of HTML for every stage (``text.py``), serializing HTML (``markup.py``), decoding bytes
to text by their declared or detected charset for feeds, JSON and pages (``charset.py``), and the
URL policy for every link we publish and every address we reach (``urls.py``)."""
