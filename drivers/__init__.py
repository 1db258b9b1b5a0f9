"""Southbound drivers: one folder per protocol, each behind the `Driver` protocol."""
