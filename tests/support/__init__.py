"""Fixtures and fakes shared by the test suites."""
