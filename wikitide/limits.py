"""Limits of a recent change that every deployable applies the same way: the producer refuses a frame past them
before Kinesis, the processor refuses an event past them as a dead letter, and the API refuses a parameter past
them, since no stored event can match it."""

# The largest integer a JSON reader keeps exactly (IEEE double), and so the largest id, revision or length that
# EventStreams' consumers agree on.
MAX_SAFE_INTEGER = 2**53 - 1
# MediaWiki's own limit for a page title (and a user name), in bytes of UTF-8.
MAX_TITLE_BYTES = 255
# Arrays and objects nested deeper than this are refused; the recordings nest 3 deep (root, log_params, a list).
MAX_DEPTH = 16
