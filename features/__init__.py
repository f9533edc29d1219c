"""Pure feature functions: ingest/validate, RFM, behavioural windows, labels, segments."""
