"""Matterport-style sample scripts (run them as scripts: ``python samples/balloon.py --help``);
a package so that the tests and benchmarks import their configs by name."""
