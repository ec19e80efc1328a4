"""`python -m review_app {enqueue,export,role,stats}`: fill the queue, export curated data, roles, numbers.

    python -m review_app enqueue --db runs/fin/review.db --in runs/fin/accepted.jsonl [--reviews 2]
    streamlit run review_app/app.py -- --db runs/fin/review.db
    python -m review_app export --db runs/fin/review.db --out runs/fin/curated.jsonl [--format hf]
    python -m review_app export --db runs/fin/review.db --out runs/fin/dpo.jsonl --format dpo
    python -m review_app role --db runs/fin/review.db --annotator chris --role adjudicator
    python -m review_app stats --db runs/fin/review.db
"""

from __future__ import annotations

import argparse
import json

from review_app.export import enqueue_file, export_curated
from review_app.metrics import summary
from review_app.resolve import ROLES
from review_app.store import ReviewStore


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m review_app", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    enq = sub.add_parser("enqueue", help="add accepted records to the review queue (loading a file twice adds nothing)")
    enq.add_argument("--db", required=True, help="review database: a .db file (SQLite) or a SQLAlchemy URL")
    enq.add_argument("--in", dest="inp", required=True, help="JSONL of records (the validators' accepted.jsonl)")
    enq.add_argument("--reviews", type=int, default=1, choices=(1, 2),
                     help="independent decisions needed per item (2: every item is reviewed twice)")
    enq.add_argument("--double-fraction", type=float, default=0.0,
                     help="fraction of items (seeded) that need two decisions, for agreement (default 0)")
    enq.add_argument("--seed", type=int, default=0, help="seed for the random audit order and the double sample")

    exp = sub.add_parser("export", help="write approved and edited records as the curated JSONL")
    exp.add_argument("--db", required=True, help="review database (.db file or SQLAlchemy URL)")
    exp.add_argument("--out", required=True, help="curated JSONL to write (atomically)")
    exp.add_argument("--format", default="jsonl", choices=("jsonl", "hf", "dpo"),
                     help="hf: also write a `datasets` folder with a dataset card next to --out; "
                          "dpo: write preference pairs from human edits (prompt/chosen/rejected, TRL DPOTrainer)")
    exp.add_argument("--hf-dir", help="folder for --format hf (default: <out stem>_hf next to --out)")

    role = sub.add_parser("role", help="give an annotator a role: adjudicator (settles disputed items) or annotator")
    role.add_argument("--db", required=True, help="review database (.db file or SQLAlchemy URL)")
    role.add_argument("--annotator", required=True, help="the name they sign in with")
    role.add_argument("--role", required=True, choices=ROLES)

    st = sub.add_parser("stats", help="print the dashboard's numbers as JSON")
    st.add_argument("--db", required=True, help="review database (.db file or SQLAlchemy URL)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    store = ReviewStore(args.db, create=args.command == "enqueue")
    try:
        if args.command == "enqueue":
            res = enqueue_file(store, args.inp, reviews=args.reviews, double_fraction=args.double_fraction,
                               seed=args.seed)
            print(f"enqueued {res.added} new items ({res.skipped} already queued) into {args.db}")
        elif args.command == "export":
            res = export_curated(store, args.out, fmt=args.format, hf_dir=args.hf_dir)
            if args.format == "dpo":
                print(f"wrote {res['records']} preference pairs from edited items to {res['out']} "
                      f"({res['skipped_no_prompt']} edited items without a generation prompt left out)")
                return 0
            extra = f"; datasets folder {res['hf_dir']}" if "hf_dir" in res else ""
            print(f"wrote {res['records']} curated records ({res['edited']} edited) to {res['out']}{extra}")
        elif args.command == "role":
            store.set_role(args.annotator, args.role)
            print(f"{args.annotator}: {args.role}")
        else:
            print(json.dumps(summary(store), indent=2, ensure_ascii=False))
    finally:
        store.close()
    return 0
