#!/usr/bin/env python3
"""Runs memwatch's end-to-end tests: python3 tests/e2e/run.py [-k PATTERN]."""
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("tests/e2e: run as root: the tests load BPF programs and attach uprobes")
    argv = [sys.argv[0], "discover", "-s", HERE, "-p", "test_*.py", "-v"] + sys.argv[1:]
    unittest.main(module=None, argv=argv)
