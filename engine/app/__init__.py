"""The ``d2l-ignite`` application: command line, run folders, demo data. Built only on the public API."""
