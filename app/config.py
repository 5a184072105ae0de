"""Settings, read from ``YDC_*`` environment variables and validated."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Host names that only this machine can reach: listening there needs no login.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class ExposedWithoutAccounts(RuntimeError):
    """YDC_HOST is not loopback and YDC_ACCOUNTS is off."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="YDC_", extra="ignore")

    data_dir: Path = Field(Path("storage"), description="Where the database and bytes live.")
    database_url: str = Field("", description="SQLAlchemy async URL; default SQLite in data_dir.")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    task_heartbeat_s: float = Field(
        30.0, gt=0, description="A running task silent longer is stale."
    )
    task_slots: int = Field(1, ge=1, le=32, description="Tasks one runner runs at once.")
    import_roots: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Host names the server answers to, beyond YDC_HOST."
    )
    max_upload_bytes: int = Field(50 * 1024 * 1024, gt=0)
    max_image_pixels: int = Field(100_000_000, gt=0)
    max_import_bytes: int = Field(
        32 * 1024**3, gt=0, description="The largest dataset zip an import may upload."
    )
    run_tasks: bool = Field(True, description="Start the in-process task runner with the server.")
    world_weights: Path | None = Field(
        None, description="YOLO-World weights (.pt); default: the one uploaded into data_dir."
    )
    clip_weights: Path | None = Field(
        None, description="CLIP ViT-B/32 text encoder (.pt); default: the uploaded one."
    )
    accounts: bool = Field(
        False, description="Named users with roles: every page, the API and /media need a login."
    )
    session_days: float = Field(
        14.0, gt=0, le=366, description="How long a login lasts (a session cookie's lifetime)."
    )
    disk_reserve_mb: int = Field(
        500,
        ge=0,
        description="Free disk (MB) kept where data_dir lives: uploads, imports, exports and "
        "trainings that would go below it are refused; 0 turns it off.",
    )
    # Issue 11 part 3: notifications and webhooks.
    public_url: str = Field(
        "", description="The address people reach ydc at, for links in webhooks; default host:port."
    )
    webhook_attempts: int = Field(8, ge=1, le=50, description="Attempts of one webhook delivery.")
    webhook_backoff_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="Wait after a webhook's first failed attempt; doubles, each wait at most 1 h.",
    )
    webhook_timeout_s: float = Field(10.0, gt=0, le=300, description="Time limit of one attempt.")
    notify_poll_s: float = Field(5.0, gt=0, le=600, description="How often pages ask for ends.")
    feed_schemes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["rtsp", "rtsps", "http", "https"],
        description="Stream URL schemes a feed may open (comma-separated); 'device' allows "
        "cameras of the server by index.",
    )
    log_level: str = "INFO"

    @field_validator("import_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: object) -> object:
        # os.pathsep-separated in the environment, like PATH.
        if isinstance(value, str):
            import os

            return [Path(p) for p in value.split(os.pathsep) if p.strip()]
        return value

    @field_validator("world_weights", "clip_weights", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("feed_schemes", mode="before")
    @classmethod
    def _split_schemes(cls, value: object) -> object:
        if isinstance(value, str):
            return [s.strip().lower() for s in value.split(",") if s.strip()]
        return value

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return [h.strip() for h in value.split(",") if h.strip()]
        return value

    @model_validator(mode="after")
    def _resolve(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        self.import_roots = [p.expanduser().resolve() for p in self.import_roots]
        if self.world_weights is not None:
            self.world_weights = self.world_weights.expanduser().resolve()
        if self.clip_weights is not None:
            self.clip_weights = self.clip_weights.expanduser().resolve()
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.data_dir / 'ydc.db'}"
        return self

    @property
    def base_url(self) -> str:
        """Where ydc is reached, for links sent elsewhere: ``YDC_PUBLIC_URL`` or host:port."""
        if self.public_url.strip():
            return self.public_url.strip().rstrip("/")
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"http://{host}:{self.port}"

    @property
    def hosts(self) -> set[str]:
        """Every host name a request may use: loopback names, YDC_HOST, YDC_ALLOWED_HOSTS."""
        return {"127.0.0.1", "localhost", "::1", self.host, *self.allowed_hosts}

    @property
    def exposed_without_accounts(self) -> bool:
        """Whether ydc would listen beyond loopback with no login in front of it."""
        return not self.accounts and self.host.strip("[]").lower() not in LOOPBACK_HOSTS

    def refuse_exposure(self) -> None:
        """Raise ``ExposedWithoutAccounts`` when binding beyond loopback without accounts."""
        if self.exposed_without_accounts:
            raise ExposedWithoutAccounts(
                f"ydc will not listen on {self.host!r} without accounts: anyone who reaches it "
                "could read and change every project. Set YDC_ACCOUNTS=true and create an admin "
                "(ydc user add NAME --role admin), or keep YDC_HOST=127.0.0.1. See the README, "
                "sections “Accounts” and “Deployment”."
            )

    def as_env(self) -> dict[str, str]:
        """These settings as ``YDC_*`` variables, for a worker subprocess."""
        import os

        return {
            "YDC_DATA_DIR": str(self.data_dir),
            "YDC_DATABASE_URL": self.database_url,
            "YDC_HOST": self.host,
            "YDC_PORT": str(self.port),
            "YDC_TASK_HEARTBEAT_S": str(self.task_heartbeat_s),
            "YDC_TASK_SLOTS": str(self.task_slots),
            "YDC_IMPORT_ROOTS": os.pathsep.join(str(p) for p in self.import_roots),
            "YDC_ALLOWED_HOSTS": ",".join(self.allowed_hosts),
            "YDC_MAX_UPLOAD_BYTES": str(self.max_upload_bytes),
            "YDC_MAX_IMAGE_PIXELS": str(self.max_image_pixels),
            "YDC_MAX_IMPORT_BYTES": str(self.max_import_bytes),
            "YDC_LOG_LEVEL": self.log_level,
            "YDC_DISK_RESERVE_MB": str(self.disk_reserve_mb),
            "YDC_ACCOUNTS": str(self.accounts).lower(),
            "YDC_SESSION_DAYS": str(self.session_days),
            "YDC_WORLD_WEIGHTS": str(self.world_weights or ""),
            "YDC_CLIP_WEIGHTS": str(self.clip_weights or ""),
            "YDC_FEED_SCHEMES": ",".join(self.feed_schemes),
        }
