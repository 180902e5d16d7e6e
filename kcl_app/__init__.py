"""The KCL record processor: de-duplicates, enriches and stores each change (run by the Java MultiLangDaemon)."""
