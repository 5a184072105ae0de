"""stream feeds and live view

Revision ID: b8b32a9d2a80
Revises: 1c4a7dcb0203
Create Date: 2026-11-24 10:15:00

"""

from collections.abc import Sequence

# revision identifiers, used by Alembic.
revision: str = "b8b32a9d2a80"
down_revision: str | Sequence[str] | None = "1c4a7dcb0203"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""


def downgrade() -> None:
    """Downgrade schema."""
