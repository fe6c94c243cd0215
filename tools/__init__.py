"""Developer tools (not part of mrcnn); run from the repository root: python -m tools.X.NAME"""
