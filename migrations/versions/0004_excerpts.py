"""excerpts

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 09:12:40.118302
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('excerpt',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('testimony_id', sa.Integer(), nullable=False),
    sa.Column('blob_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('written_by', sa.Integer(), nullable=True),
    sa.Column('written_on', sa.Date(), nullable=False),
    sa.Column('approved_by', sa.Integer(), nullable=True),
    sa.Column('approved_on', sa.Date(), nullable=True),
    sa.ForeignKeyConstraint(['approved_by'], ['reviewer.id'], name=op.f('fk_excerpt_approved_by_reviewer')),
    sa.ForeignKeyConstraint(['blob_id'], ['sealed_blob.id'], name=op.f('fk_excerpt_blob_id_sealed_blob')),
    sa.ForeignKeyConstraint(['testimony_id'], ['testimony.id'], name=op.f('fk_excerpt_testimony_id_testimony')),
    sa.ForeignKeyConstraint(['written_by'], ['reviewer.id'], name=op.f('fk_excerpt_written_by_reviewer')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_excerpt'))
    )
    with op.batch_alter_table('excerpt', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_excerpt_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_excerpt_testimony_id'), ['testimony_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('excerpt', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_excerpt_testimony_id'))
        batch_op.drop_index(batch_op.f('ix_excerpt_status'))

    op.drop_table('excerpt')
