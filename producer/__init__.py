"""The producer: reads EventStreams (or a replay / synthetic SSE source) and writes every change into Kinesis."""
