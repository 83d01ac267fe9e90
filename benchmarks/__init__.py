"""asv benchmark suites of groupconv (run with ``asv run``; see ``asv.conf.json``)."""
