"""What a run leaves: config.json, results.parquet, routing tables, reports."""
