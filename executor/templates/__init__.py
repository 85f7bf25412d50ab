"""Plugin templates ``plugin-executor init`` copies (``executor/cli/scaffold.py``).

Each template folder holds ``main.py``, ``requirements.txt``, ``test_plugin.py`` and
``events/*.json``; they are real plugin code, linted and type-checked with the package, and
``tests/e2e/test_scaffold.py`` runs each generated plugin's tests and the plugin itself in
the sandbox.
"""
