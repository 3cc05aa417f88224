"""Configuration: the TOML file and the environment read into typed settings.

``types.py`` holds the value types (durations, strict numbers, URLs, ``"${NAME}"`` secrets),
``settings.py`` the sections and ``Settings``, ``loading.py`` finding and reading the file, and
``errors.py`` the wording of problems. A source kind's own keys and defaults live with its adapter
(``sources/``).
"""
