"""dataset versions

Revision ID: 5d0c2e7a9f14
Revises: b9604c639ac3
Create Date: 2026-11-24 10:40:00

"""

from collections.abc import Sequence

# revision identifiers, used by Alembic.
revision: str = "5d0c2e7a9f14"
down_revision: str | Sequence[str] | None = "b9604c639ac3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""


def downgrade() -> None:
    """Downgrade schema."""
