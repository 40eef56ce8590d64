"""The benchmarks behind ``make bench`` (``python -m bench``); not part of the tests."""
