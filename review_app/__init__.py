"""`python -m review_app enqueue|export|stats --db DB ...` and `streamlit run review_app/app.py -- --db DB`.

The human review stage: a queue of generated records in a SQL store (SQLite by default, any
SQLAlchemy URL for Postgres) with leases, an append-only decision log, agreement metrics, a
Streamlit app for annotators, and the export of curated records for training.

Python API (what the demo's clearly-labelled unattended review step calls):

    from review_app import ReviewStore, enqueue_file, export_curated
    store = ReviewStore("runs/fin/review.db")
    enqueue_file(store, "runs/fin/accepted.jsonl")
    store.decide(item_id, annotator="auto", action="approve", reason="unattended demo")
    export_curated(store, "runs/fin/curated.jsonl", fmt="hf")
"""

from review_app.export import enqueue_file, export_curated
from review_app.store import Conflict, Item, ReviewStore

__all__ = ["Conflict", "Item", "ReviewStore", "enqueue_file", "export_curated"]
