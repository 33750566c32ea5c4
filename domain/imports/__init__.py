"""The import service's domain: what external sources (YouTube channels, RSS/Atom feeds, REST APIs,
manual files) are turned into, and the rules for fetching them politely and safely, as plain
functions and records that the resources, assets and API call; no I/O of its own."""
