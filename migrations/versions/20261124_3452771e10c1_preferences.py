"""preferences

Revision ID: 3452771e10c1
Revises: 55a7d9099d0c
Create Date: 2026-11-24 10:15:00

"""

from collections.abc import Sequence

# revision identifiers, used by Alembic.
revision: str = "3452771e10c1"
down_revision: str | Sequence[str] | None = "55a7d9099d0c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""


def downgrade() -> None:
    """Downgrade schema."""
