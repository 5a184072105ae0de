"""Dataset health: what the project overview shows about a project's images and labels."""

from __future__ import annotations

from app.domain.models import DatasetHealth
from app.domain.stores import Stores

MAX_GROUPS = 20  # near-duplicate groups shown (the totals count them all)
MAX_MEMBERS = 6  # images shown per group


async def dataset_health(stores: Stores, project: str) -> DatasetHealth:
    """Images per split and their labelling, boxes per class, missing files, duplicates and
    near-duplicate groups (those spanning splits first). ``NotFound``."""
    return await stores.dataset.health(project, max_groups=MAX_GROUPS, max_members=MAX_MEMBERS)
