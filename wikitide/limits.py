"""Limits of a recent change that every deployable applies the same way: the processor refuses an event past
them, and the API refuses a parameter past them, since no stored event can match it."""

# The largest integer a JSON reader keeps exactly (IEEE double), and so the largest id, revision or length that
# EventStreams' consumers agree on.
MAX_SAFE_INTEGER = 2**53 - 1
# MediaWiki's own limit for a page title, in bytes of UTF-8.
MAX_TITLE_BYTES = 255
