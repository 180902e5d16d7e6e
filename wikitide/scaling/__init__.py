"""Shards that follow the traffic: the decision (`shards.py`, pure) and the service that applies it (`service.py`)."""
