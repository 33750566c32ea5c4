"""The import service: sources, their runs (jobs) and the records they bring in as content items."""
