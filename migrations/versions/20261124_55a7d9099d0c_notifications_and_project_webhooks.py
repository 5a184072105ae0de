"""notifications and project webhooks

Revision ID: 55a7d9099d0c
Revises: b8b32a9d2a80
Create Date: 2026-11-24 10:15:00

"""

from collections.abc import Sequence

# revision identifiers, used by Alembic.
revision: str = "55a7d9099d0c"
down_revision: str | Sequence[str] | None = "b8b32a9d2a80"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""


def downgrade() -> None:
    """Downgrade schema."""
