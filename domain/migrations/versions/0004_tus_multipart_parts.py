"""tus uploads as object-store multipart uploads: the upload id and the parts sent so far

Uploads unfinished at upgrade time get no multipart upload (their bytes were staged whole on the API
host): the server answers 410 to them and the tus cleanup job removes them when they expire.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tus_uploads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("multipart_upload_id", sa.String(length=1024), nullable=True))
        batch_op.add_column(sa.Column("parts", JSONType, nullable=True))
    op.execute("UPDATE tus_uploads SET parts = '[]'")
    with op.batch_alter_table("tus_uploads", schema=None) as batch_op:
        batch_op.alter_column("parts", existing_type=JSONType, nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("tus_uploads", schema=None) as batch_op:
        batch_op.drop_column("parts")
        batch_op.drop_column("multipart_upload_id")
