"""The intake's own PostgreSQL role: it can add testimony, and little else.

Threat: the witness face is the part of the service the whole internet can reach. If it
is taken over, the attacker holds its database credentials.

Guarantee (``testimony db roles`` prints this SQL, ``--apply`` runs it as the owner):

* The intake role reads only what the intake needs: the recipients' public keys, the
  instance's receipt salt and cost, a witness's id and reply key (never its receipt
  hash), testimony and its rows (statement, attachment, message) and sealed items
  (ciphertext it holds no key to), and the audit chain's head (sequence number and hash,
  not what reviewers did). A receipt finds its testimony through :data:`BY_RECEIPT`
  (``testimony_by_receipt``, a ``SECURITY DEFINER`` SQL function like the one below),
  which answers a lookup hash with its testimony's id or NULL, so the role cannot learn
  the hash that opens someone else's testimony.
* It cannot read reviewer tables: ``reviewer``, ``review_session``, ``note``, incident
  links and tags, excerpts, or anything added later (privileges are listed, never
  "all tables").
* It adds rows (witness, the witness's reply key, testimony, statement, attachment, sealed
  items, chunks, audit events) but never deletes testimony, and cannot extend what is
  already committed. Row-level security lets it add chunks and readers only to items
  created in the same transaction (a ``sealed_blob`` row of this transaction's ``xmin``
  that is not a reply: replies are the only older items whose rows it may update), and
  statements and attachments only where :data:`MAY_ADD` (``testimony_may_add``, a
  ``SECURITY DEFINER`` SQL function created here, owned by the tables' owner,
  ``search_path`` pinned, executable by the role alone) says so: the testimony's witness
  row is new in this transaction (a new testimony; the role cannot update witness rows),
  or its receipt hash is the lookup hash the intake put in the transaction-local setting
  :data:`RECEIPT_SETTING` (``intake.submission.add`` does, after the witness gave their
  receipt). Audit events it writes are the witness's only (``actor = 'witness'``), at a
  day-only time (midnight), as ``audit.append(..., day_only=True)`` writes them.
* It updates only three narrow things the witness face does: ``testimony.updated_on`` (a
  witness adding to their testimony), a witness's reply key and the header of a reply (a
  witness's reply key moved to a post-quantum key at follow-up, rewriting only the age
  header: the payload is never touched). Row-level security limits the keys it adds or
  changes to witness reply keys (it can never add a reader of every new item), header
  updates to items created in the same transaction (sealing writes the header after the
  row) and to replies, and the removal of ``blob_recipient`` rows to replies.

Limit: ``testimony.updated_on`` of any testimony stays writable, and the role reads every
testimony's rows by id (their sealed contents stay closed to it). A receipt is as strong as
its 66 bits and one Argon2id run per guess: the role can call ``testimony_by_receipt``
with guessed hashes, but a hash is 256 bits it cannot derive without a code.

Misuse to avoid: running the review face or migrations as this role (they need the
owner, which row-level security does not restrict); forgetting to re-apply after an
upgrade that adds tables the intake writes (the intake then fails closed, with 503s).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

READS = (
    "recipient",
    "instance_value",
    "testimony",
    "statement",
    "attachment",
    "message",
    "sealed_blob",
    "blob_chunk",
    "blob_recipient",
)
AUDIT_HEAD = ("id", "seq", "hash")  # what appending to the chain needs to read
# A witness row without its receipt hash: the role finds a testimony by receipt through
# BY_RECEIPT, so it never learns the hash that opens someone else's testimony.
WITNESS_READS = ("id", "reply_recipient_id")
ADDS = (
    "recipient",
    "witness",
    "testimony",
    "statement",
    "attachment",
    "sealed_blob",
    "blob_chunk",
    "blob_recipient",
    "audit_event",
)
# Every table the role adds to has an id sequence, but those keyed by their item.
SEQUENCES = tuple(t for t in ADDS if t not in ("blob_chunk", "blob_recipient"))
UPDATES = {
    "testimony": ("updated_on",),
    "recipient": ("public_key",),
    "sealed_blob": ("header", "payload_size", "chunk_count"),
}
REPLIES = "SELECT blob_id FROM message"
# The transaction-local setting through which the intake shows the receipt it was given
# (its lookup hash) before adding to an existing testimony.
RECEIPT_SETTING = "testimony.receipt"
MAY_ADD = "testimony_may_add"
# $1 a testimony, $2 the receipt shown. Its witness row new in this transaction means a
# new testimony: the role cannot update witness rows, so an old one never looks new.
MAY_ADD_BODY = (
    "SELECT EXISTS (SELECT FROM testimony t JOIN witness w ON w.id = t.witness_id "
    "WHERE t.id = $1 AND (w.xmin = pg_current_xact_id()::xid "
    "OR (coalesce($2, '') <> '' AND w.receipt_hash = $2)))"
)
BY_RECEIPT = "testimony_by_receipt"
# $1 the receipt shown (its lookup hash): the testimony it opens, or NULL.
BY_RECEIPT_BODY = (
    "SELECT t.id FROM testimony t JOIN witness w ON w.id = t.witness_id "
    "WHERE coalesce($1, '') <> '' AND w.receipt_hash = $1"
)
OWNED_LIKE_TABLES = (
    "DO $$ BEGIN EXECUTE format('ALTER FUNCTION %s OWNER TO %I', :function, "
    "(SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = :table::regclass)); END $$"
)
# Items created in this transaction: the row is this transaction's (xmin) and is not a
# reply (replies are the only older items whose rows the role may update, which gives
# them this transaction's xmin too; the role never creates one).
NEW_ITEM = (
    "EXISTS (SELECT FROM sealed_blob b WHERE b.id = blob_id "
    "AND b.xmin = pg_current_xact_id()::xid "
    "AND NOT EXISTS (SELECT FROM message m WHERE m.blob_id = b.id))"
)  # blob_id: the policy's own row (sealed_blob has no such column); by primary key
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class RolePlan:
    role: str
    database: str
    schema: str
    password: str | None = None


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(
            "role names are lower-case letters, digits and _ (at most 63), not %r" % name
        )
    return name


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ident(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def intake_role_sql(plan: RolePlan) -> list[str]:
    """The statements, in order, that create or reconcile the intake role."""
    role = check_name(plan.role)
    schema = _ident(plan.schema)

    def q(table: str) -> str:
        return "%s.%s" % (schema, _ident(table))

    password = " PASSWORD %s" % _literal(plan.password) if plan.password else ""
    out = [
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = %s) THEN "
        "CREATE ROLE %s LOGIN; END IF; END $$" % (_literal(role), role),
        "ALTER ROLE %s LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS%s"
        % (role, password),
        "GRANT CONNECT ON DATABASE %s TO %s" % (_ident(plan.database), role),
        "GRANT USAGE ON SCHEMA %s TO %s" % (schema, role),
        "REVOKE CREATE ON SCHEMA %s FROM %s" % (schema, role),
        # Start from nothing, so re-applying after an upgrade leaves exactly this list.
        "REVOKE ALL ON ALL TABLES IN SCHEMA %s FROM %s" % (schema, role),
        "REVOKE ALL ON ALL SEQUENCES IN SCHEMA %s FROM %s" % (schema, role),
        "GRANT SELECT ON %s TO %s" % (", ".join(q(t) for t in READS), role),
        "GRANT SELECT (%s) ON %s TO %s" % (", ".join(AUDIT_HEAD), q("audit_event"), role),
        "GRANT SELECT (%s) ON %s TO %s" % (", ".join(WITNESS_READS), q("witness"), role),
        "GRANT INSERT ON %s TO %s" % (", ".join(q(t) for t in ADDS), role),
        "GRANT USAGE ON SEQUENCE %s TO %s"
        % (", ".join("%s.%s" % (schema, _ident(t + "_id_seq")) for t in SEQUENCES), role),
    ]
    for table, columns in UPDATES.items():
        out.append("GRANT UPDATE (%s) ON %s TO %s" % (", ".join(columns), q(table), role))
    out.append("GRANT DELETE ON %s TO %s" % (q("blob_recipient"), role))
    # A testimony takes statements and files only when it was created in this transaction
    # (its witness row is new: the role cannot update witness rows, so an old one never
    # looks new) or when the receipt shown matches its witness; and a receipt finds its
    # testimony. Both run as the owner, since the role cannot read witness.receipt_hash
    # (the grant above leaves it out); search_path pinned against look-alike objects.
    for name, signature, returns, body in (
        (MAY_ADD, "bigint, text", "boolean", MAY_ADD_BODY),
        (BY_RECEIPT, "text", "bigint", BY_RECEIPT_BODY),
    ):
        function = "%s.%s" % (schema, _ident(name))
        out += [
            "CREATE OR REPLACE FUNCTION %s(%s) RETURNS %s LANGUAGE sql STABLE "
            "SECURITY DEFINER SET search_path = pg_catalog, %s, pg_temp AS $f$ %s $f$"
            % (function, signature, returns, schema, body),
            # Owned by the tables' owner, whoever runs this (psql as postgres, or --apply).
            OWNED_LIKE_TABLES.replace(
                ":function", _literal("%s(%s)" % (function, signature))
            ).replace(":table", _literal(q("testimony"))),
            "REVOKE ALL ON FUNCTION %s(%s) FROM PUBLIC" % (function, signature),
            "GRANT EXECUTE ON FUNCTION %s(%s) TO %s" % (function, signature, role),
        ]
    may_add = "%s.%s" % (schema, _ident(MAY_ADD))
    receipt_shown = "WITH CHECK (%s(testimony_id, current_setting(%s, true)))" % (
        may_add,
        _literal(RECEIPT_SETTING),
    )
    # Row-level security binds the intake role only: the owner (review face, commands,
    # migrations) is not subject to it.
    policies = {
        "recipient": [
            ("read", "SELECT", "USING (true)"),
            ("add", "INSERT", "WITH CHECK (kind = 'witness' AND NOT active)"),
            (
                "rekey",
                "UPDATE",
                "USING (kind = 'witness') WITH CHECK (kind = 'witness' AND NOT active)",
            ),
        ],
        "sealed_blob": [
            ("read", "SELECT", "USING (true)"),
            ("add", "INSERT", "WITH CHECK (true)"),
            # Which rows may change is USING's to say; the new row version has no xmin
            # yet, so the check on it is only that it is a row.
            (
                "finish",
                "UPDATE",
                "USING (xmin = pg_current_xact_id()::xid OR id IN (%s)) "
                "WITH CHECK (true)" % REPLIES,
            ),
        ],
        "blob_chunk": [
            ("read", "SELECT", "USING (true)"),
            ("add", "INSERT", "WITH CHECK (%s)" % NEW_ITEM),
        ],
        "blob_recipient": [
            ("read", "SELECT", "USING (true)"),
            # New items' readers, and a reply's readers rewritten with its header when the
            # witness's reply key moves.
            (
                "add",
                "INSERT",
                "WITH CHECK (%s OR blob_id IN (%s))" % (NEW_ITEM, REPLIES),
            ),
            ("rekey", "DELETE", "USING (blob_id IN (%s))" % REPLIES),
        ],
        "statement": [
            ("read", "SELECT", "USING (true)"),
            ("add", "INSERT", receipt_shown),
        ],
        "attachment": [
            ("read", "SELECT", "USING (true)"),
            ("add", "INSERT", receipt_shown),
        ],
        # The chain's head is read (its columns limited by the grant above); events are
        # only a witness's, and kept to the day.
        "audit_event": [
            ("read", "SELECT", "USING (true)"),
            (
                "add",
                "INSERT",
                "WITH CHECK (actor = 'witness' AND at = date_trunc('day', at))",
            ),
        ],
    }
    for table, rules in policies.items():
        out.append("ALTER TABLE %s ENABLE ROW LEVEL SECURITY" % q(table))
        for name, command, clause in rules:
            policy = _ident("%s_%s" % (role, name))
            out.append("DROP POLICY IF EXISTS %s ON %s" % (policy, q(table)))
            out.append(
                "CREATE POLICY %s ON %s FOR %s TO %s %s" % (policy, q(table), command, role, clause)
            )
    return out
