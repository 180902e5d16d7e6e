"""Code shared by wikitide's producer, KCL processor and API: the event model, settings, AWS wiring and the local stack."""

__version__ = "0.1.0"
