"""preferences

Revision ID: 3452771e10c1
Revises: 55a7d9099d0c
Create Date: 2026-11-24 10:15:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "3452771e10c1"
down_revision: str | Sequence[str] | None = "55a7d9099d0c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema: the instance's preferences, one row per top-level name."""
    op.create_table(
        "preference",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_preference")),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("preference")
