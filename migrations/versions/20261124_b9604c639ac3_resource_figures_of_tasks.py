"""resource figures of tasks

Revision ID: b9604c639ac3
Revises: 3452771e10c1
Create Date: 2026-11-24 10:15:00

"""

from collections.abc import Sequence

# revision identifiers, used by Alembic.
revision: str = "b9604c639ac3"
down_revision: str | Sequence[str] | None = "3452771e10c1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""


def downgrade() -> None:
    """Downgrade schema."""
