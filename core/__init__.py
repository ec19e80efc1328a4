"""What every stage shares: the record type, task loading, JSONL I/O and model loading.

Nothing here imports torch at module import time; `backends.models` does so lazily.
"""
