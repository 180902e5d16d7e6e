"""The errors every wikitide package raises; adapters translate client errors into these."""


class WikitideError(Exception):
    """Base of every error wikitide raises on purpose."""


class ConfigError(WikitideError):
    """A setting is missing or wrong; the message names it."""


class InvalidChange(WikitideError):
    """An event that cannot be processed: not JSON, not an object, or missing a required field."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class DependencyUnavailable(WikitideError):
    """A service (Kinesis, DynamoDB, Redis) failed after the bounded retries."""


class RequestRefused(DependencyUnavailable):
    """A service refused a request for good (a malformed or oversized item, a missing resource, no permission).

    A subclass of `DependencyUnavailable`, so code that only knows "it failed" still stops; code that can act
    on it (the record processor isolating the one record behind it) must not retry the same request as it is.
    """
