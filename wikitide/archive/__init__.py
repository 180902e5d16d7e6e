"""The raw-event archive: Firehose objects in S3, the local forwarder that fills them, and the tools that read them."""
