"""Engine, ORM models and the unit of work; used by repositories and composition roots only."""
