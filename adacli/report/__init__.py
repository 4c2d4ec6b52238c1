"""The report stage: tables, plots, HTML and Markdown pages, live progress (no file is read here)."""
