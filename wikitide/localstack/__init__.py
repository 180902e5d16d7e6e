"""The embedded local stack: kinesis-mock, moto server and redis-server, plus the pipeline's own processes."""
