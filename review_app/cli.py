"""`python -m review_app {enqueue,export,role,stats,users}`: fill the queue, export, roles, numbers, sign-ins.

    python -m review_app enqueue --db runs/fin/review.db --in runs/fin/accepted.jsonl [--reviews 2]
    python -m review_app enqueue --db runs/fin/review.db --in samples.csv --task fin_sentiment [--lang en]
    streamlit run review_app/app.py -- --db runs/fin/review.db [--users review_users.txt]
    python -m review_app export --db runs/fin/review.db --out runs/fin/curated.jsonl [--format hf] [--require-complete]
    python -m review_app export --db runs/fin/review.db --out runs/fin/dpo.jsonl --format dpo
    python -m review_app role --db runs/fin/review.db --annotator chris --role adjudicator
    python -m review_app stats --db runs/fin/review.db
    python -m review_app users add --file review_users.txt ana    # asks for ana's password

A database URL is printed with its password masked; a database that cannot be reached is one line
naming host and database, exit 2. `--db` defaults to $SEEDLOOP_REVIEW_DB, which keeps a password out
of the process list (`ps` shows command lines to every user of the machine).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys

from core.errors import fail
from core.inputs import ColumnMap, add_input_args, columns_from_args
from review_app.auth import UsersFile
from review_app.calibration import stats
from review_app.export import enqueue_file, export_curated
from review_app.resolve import ROLES
from review_app.store import ReviewStore


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m review_app", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    db_help = ("review database: a .db file (SQLite) or a SQLAlchemy URL, e.g. postgresql+psycopg://user:pw@host/db "
               "(default $SEEDLOOP_REVIEW_DB: keeps a password out of the process list)")
    env_db = os.environ.get("SEEDLOOP_REVIEW_DB") or None

    enq = sub.add_parser("enqueue", help="add records or plain rows to the review queue (a file twice adds nothing)")
    enq.add_argument("--db", required=env_db is None, default=env_db, help=db_help)
    enq.add_argument("--in", dest="inp", required=True,
                     help="records (the validators' accepted.jsonl), or with --task plain rows: JSONL, CSV, TSV or "
                          "Parquet with text and label columns")
    enq.add_argument("--task", help="task of plain rows (tasks/<name>.yaml or a path): their labels are checked "
                                    "against it; records already name their task")
    enq.add_argument("--reviews", type=int, default=1, choices=(1, 2),
                     help="independent decisions needed per item (2: every item is reviewed twice)")
    enq.add_argument("--double-fraction", type=float, default=0.0,
                     help="fraction of items (seeded) that need two decisions, for agreement (default 0)")
    enq.add_argument("--seed", type=int, default=0, help="seed for the random audit order and the double sample")
    add_input_args(enq)

    exp = sub.add_parser("export", help="write approved and edited records as the curated JSONL")
    exp.add_argument("--db", required=env_db is None, default=env_db, help=db_help)
    exp.add_argument("--out", required=True, help="curated JSONL to write (atomically)")
    exp.add_argument("--format", default="jsonl", choices=("jsonl", "hf", "dpo"),
                     help="hf: also write a `datasets` folder with a dataset card next to --out; "
                          "dpo: preference pairs from human edits (generation pairs from text edits, "
                          "classification pairs from relabels; TRL DPOTrainer's format)")
    exp.add_argument("--hf-dir", help="folder for --format hf (default: <out stem>_hf next to --out)")
    exp.add_argument("--require-complete", action="store_true",
                     help="refuse (exit 2, nothing written) while any item is still pending or disputed")

    role = sub.add_parser("role", help="give an annotator a role: adjudicator (settles split items) or annotator")
    role.add_argument("--db", required=env_db is None, default=env_db, help=db_help)
    role.add_argument("--annotator", required=True, help="the name they sign in with")
    role.add_argument("--role", required=True, choices=ROLES)

    st = sub.add_parser("stats", help="print the dashboard's numbers as JSON (the LLM judge's agreement with "
                                      "people under judge_vs_human)")
    st.add_argument("--db", required=env_db is None, default=env_db, help=db_help)

    users = sub.add_parser("users", help="the users file the app signs annotators in with (argon2 password hashes)")
    acts = users.add_subparsers(dest="action", required=True)
    for action, what in (("add", "add a user, or change their password"), ("remove", "remove a user"),
                         ("list", "list the names")):
        one = acts.add_parser(action, help=what)
        if action != "list":
            one.add_argument("name", help="the annotator's name, as they sign in")
        one.add_argument("--file", required=True, help="the users file, e.g. review_users.txt (made on first add)")
        if action == "add":
            one.add_argument("--password-stdin", action="store_true",
                             help="read the password from the first line of stdin instead of asking twice")
    return parser


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        fail("users add: no terminal to ask for the password on; pipe it with --password-stdin")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        fail("users add: the two passwords differ")
    return first


def users_command(args: argparse.Namespace) -> int:
    if args.action == "list":
        for name in sorted(UsersFile.load(args.file).hashes):
            print(name)
        return 0
    users = UsersFile.load(args.file, missing_ok=args.action == "add")
    if args.action == "add":
        users.set_password(args.name, _password(args.password_stdin))
        users.save()
        print(f"{args.name}: password set in {users.path}")
    else:
        users.remove(args.name)
        users.save()
        print(f"{args.name}: removed from {users.path}")
    return 0


def plain_columns(args: argparse.Namespace) -> ColumnMap:
    """The column mapping of plain rows, from `core.inputs`' flags; the text in `text` unless --text-col."""
    return columns_from_args(argparse.Namespace(**{**vars(args), "text_col": args.text_col or "text"}))


def left_out(res: dict) -> str:
    """What an export did not write because nobody has settled it yet."""
    return f"; not exported: {res['pending']} items still pending, {res['disputed']} disputed"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "users":
        return users_command(args)
    store = ReviewStore(args.db, create=args.command == "enqueue")
    try:
        if args.command == "enqueue":
            res = enqueue_file(store, args.inp, task=args.task, columns=plain_columns(args), reviews=args.reviews,
                               double_fraction=args.double_fraction, seed=args.seed)
            print(f"enqueued {res.added} new items ({res.skipped} already queued) into {store.safe_url}")
        elif args.command == "export":
            res = export_curated(store, args.out, fmt=args.format, hf_dir=args.hf_dir,
                                 require_complete=args.require_complete)
            if args.format == "dpo":
                print(f"wrote {res['records']} preference pairs to {res['out']}: {res['generation']} generation "
                      f"(text edits: generation prompt, edited vs original sample), {res['classification']} "
                      f"classification (relabels: classification prompt, corrected vs claimed label); left out: "
                      f"{res['skipped_no_prompt']} text edits without a generation prompt, "
                      f"{res['skipped_unknown_task']} relabels of tasks that are not built in{left_out(res)}")
                return 0
            extra = f"; datasets folder {res['hf_dir']}" if "hf_dir" in res else ""
            print(f"wrote {res['records']} curated records ({res['edited']} edited) to {res['out']}{extra}"
                  f"{left_out(res)}")
        elif args.command == "role":
            store.set_role(args.annotator, args.role)
            print(f"{args.annotator}: {args.role}")
        else:
            print(json.dumps(stats(store), indent=2, ensure_ascii=False))
    finally:
        store.close()
    return 0
