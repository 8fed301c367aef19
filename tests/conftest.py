"""Shared test setup. Its presence puts ``tests/`` on ``sys.path``, so test modules can import the
small helper modules beside it (``_cli_helpers``)."""
