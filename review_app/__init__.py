"""`python -m review_app enqueue|export|role|stats|users ...` and `streamlit run review_app/app.py -- --db DB`.

The human review stage: a queue of generated records in a SQL store (SQLite by default, any
SQLAlchemy URL for Postgres, migrated with Alembic) with leases, independent double review, an
append-only decision log, agreement metrics, a Streamlit app for annotators who sign in with their
own credentials, and the export of curated records (and DPO preference pairs) for training.

Python API (what the demo's clearly-labelled unattended review step calls):

    from review_app import ReviewStore, enqueue_file, export_curated
    store = ReviewStore("runs/fin/review.db")
    enqueue_file(store, "runs/fin/accepted.jsonl")
    store.decide(item_id, annotator="auto", action="approve", reason="unattended demo")
    export_curated(store, "runs/fin/curated.jsonl", fmt="hf")
"""

from review_app.export import enqueue_file, export_curated
from review_app.store import Conflict, Item, NotSaved, ReviewStore, Stale

__all__ = ["Conflict", "Item", "NotSaved", "ReviewStore", "Stale", "enqueue_file", "export_curated"]
