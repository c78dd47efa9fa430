"""Test support: event builders, fakes for the core's ports, moto helpers."""
