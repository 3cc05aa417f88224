"""Configuration: the TOML file and the environment read into typed settings (``settings.py``)."""
