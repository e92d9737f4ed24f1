"""Test helpers, imported by tests (never from conftest): specs, skills, payloads, fakes."""
