"""Theory checkers: one module per family of claims, each registering its checks (CHECKS).

Modules are imported lazily: ``prl.registry`` looks a name up in the generated index
(``prl/_index.json``) and imports only the module that registers it, and
``prl.registry.load_plugins()`` imports every public module of this package. Adding a module is
enough to register it; regenerate the index with ``python -m prl.catalog --write README.md``.
"""
