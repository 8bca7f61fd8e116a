"""Command-line tools; installed as ``fastreid.tools`` behind the ``fastreid-*`` console scripts."""
