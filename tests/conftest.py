"""Shared test configuration: unit tests need nothing; integration tests share one test lab."""
