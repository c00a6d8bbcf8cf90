"""The NIMBYS workflow linter: a pure library, text in, findings out.

Used by the worker on pull requests and by ``nimbys lint``. No I/O here beyond
what the caller hands in.
"""
