"""Export and inference tools (``fastreid-export-*`` console scripts when installed)."""
