"""Batch scoring: the output contract, risk bands, next-best actions and summaries (pure, no file I/O)."""
