"""Code shared by wikitide's producer, KCL processor and API: event model, settings, AWS wiring, local stack."""

__version__ = "0.1.0"
