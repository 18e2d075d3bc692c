"""Session fixtures live in tests/fixtures/: generated media and the real services."""

pytest_plugins = ["tests.fixtures.media", "tests.fixtures.services", "tests.fixtures.fault_proxy"]
