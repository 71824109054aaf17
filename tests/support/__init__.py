"""Test support, imported by the tests and never by bunq: clocks, engines, the two clusters, HTTP helpers."""
