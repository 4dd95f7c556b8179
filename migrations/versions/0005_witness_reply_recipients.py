"""witness reply keys are recipients

A witness's reply key moves from ``witness.reply_public_key`` to a ``recipient`` row of
kind ``witness`` (``witness.reply_recipient_id``), and every reply's ``blob_recipient``
rows name it, like any other reader of a sealed item. Headers are unchanged: the reply's
stanza for the witness was already there.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 23:50:00
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

recipient = sa.table(
    "recipient",
    sa.column("id", sa.Integer),
    sa.column("public_key", sa.Text),
    sa.column("kind", sa.String),
    sa.column("label", sa.String),
    sa.column("active", sa.Boolean),
    sa.column("created_on", sa.Date),
)
witness = sa.table(
    "witness",
    sa.column("id", sa.Integer),
    sa.column("reply_public_key", sa.Text),
    sa.column("reply_recipient_id", sa.Integer),
)
testimony = sa.table(
    "testimony", sa.column("id", sa.Integer), sa.column("witness_id", sa.Integer)
)
message = sa.table(
    "message", sa.column("testimony_id", sa.Integer), sa.column("blob_id", sa.Integer)
)
blob_recipient = sa.table(
    "blob_recipient", sa.column("blob_id", sa.Integer), sa.column("recipient_id", sa.Integer)
)


def upgrade() -> None:
    with op.batch_alter_table("witness") as batch:
        batch.add_column(sa.Column("reply_recipient_id", sa.Integer(), nullable=True))
    conn = op.get_bind()
    today = dt.date.today()
    rows = conn.execute(sa.select(witness.c.id, witness.c.reply_public_key).order_by(witness.c.id))
    for witness_id, public_key in rows.all():
        recipient_id = conn.execute(
            sa.insert(recipient)
            .values(
                public_key=public_key,
                kind="witness",
                label="witness",
                active=False,
                created_on=today,
            )
            .returning(recipient.c.id)
        ).scalar_one()
        conn.execute(
            sa.update(witness)
            .where(witness.c.id == witness_id)
            .values(reply_recipient_id=recipient_id)
        )
    conn.execute(
        sa.insert(blob_recipient).from_select(
            ["blob_id", "recipient_id"],
            sa.select(message.c.blob_id, witness.c.reply_recipient_id)
            .select_from(message)
            .join(testimony, testimony.c.id == message.c.testimony_id)
            .join(witness, witness.c.id == testimony.c.witness_id),
        )
    )
    with op.batch_alter_table("witness") as batch:
        batch.alter_column("reply_recipient_id", existing_type=sa.Integer(), nullable=False)
        batch.create_unique_constraint(
            op.f("uq_witness_reply_recipient_id"), ["reply_recipient_id"]
        )
        batch.create_foreign_key(
            op.f("fk_witness_reply_recipient_id_recipient"),
            "recipient",
            ["reply_recipient_id"],
            ["id"],
        )
        batch.drop_column("reply_public_key")


def downgrade() -> None:
    with op.batch_alter_table("witness") as batch:
        batch.add_column(sa.Column("reply_public_key", sa.Text(), nullable=True))
    conn = op.get_bind()
    conn.execute(
        sa.update(witness).values(
            reply_public_key=sa.select(recipient.c.public_key)
            .where(recipient.c.id == witness.c.reply_recipient_id)
            .scalar_subquery()
        )
    )
    witness_keys = sa.select(recipient.c.id).where(recipient.c.kind == "witness")
    conn.execute(
        sa.delete(blob_recipient).where(blob_recipient.c.recipient_id.in_(witness_keys))
    )
    with op.batch_alter_table("witness") as batch:
        batch.alter_column("reply_public_key", existing_type=sa.Text(), nullable=False)
        batch.drop_constraint(op.f("fk_witness_reply_recipient_id_recipient"), type_="foreignkey")
        batch.drop_constraint(op.f("uq_witness_reply_recipient_id"), type_="unique")
        batch.drop_column("reply_recipient_id")
    conn.execute(sa.delete(recipient).where(recipient.c.kind == "witness"))
