"""The import service's domain: pure Python for bringing external content (YouTube channels, RSS/Atom
feeds, generic REST APIs, manual JSON/CSV files) into the CMS as content items, with no database or
HTTP of its own, so the API, the Dagster assets and the tests share one implementation."""
