"""``config/retention.yaml``: how long each kind of personal data is kept, validated with file,
line and field (as ``config/desk.yaml``). Read by ``smsbot retention run`` each time it runs
(``SMSBOT_RETENTION_FILE`` or ``--config``); the service itself does not read it."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from common.errors import ConfigError, Problem
from common.yamlio import load_yaml, validation_problems

DEFAULT_FILE = Path(__file__).resolve().parent.parent.parent / "config" / "retention.yaml"
# Ten years: anything longer is a typo (hours or months written as days), not a choice.
_MAX_DAYS = 3650
# CN-REC-01 (collection records at least two years; compliance.md): shorter audit retention
# would destroy evidence the lender must keep, so the file cannot ask for it.
MIN_AUDIT_DAYS = 730


def _days(default: int, minimum: int = 1) -> int:
    return Field(default=default, ge=minimum, le=_MAX_DAYS)


class RetentionPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    message_text_days: int = _days(180)
    audit_days: int = _days(1095, MIN_AUDIT_DAYS)
    outbound_text_days: int = _days(180)
    unmatched_days: int = _days(90)
    unmatched_receipts_days: int = _days(90)
    sandbox_days: int = _days(7)

    @field_validator("audit_days")
    @classmethod
    def _after_texts(cls, v: int, info: ValidationInfo) -> int:
        # Entries are deleted whole after audit_days: a text kept longer than its entry
        # would be a promise the sweep cannot keep.
        texts = info.data.get("message_text_days")
        if isinstance(texts, int) and v < texts:
            raise ValueError(f"{v} is shorter than message_text_days ({texts})")
        return v

    def cutoffs(self, now: datetime) -> Cutoffs:
        def before(days: int) -> datetime:
            return now - timedelta(days=days)

        return Cutoffs(
            message_text=before(self.message_text_days),
            audit=before(self.audit_days),
            outbound_text=before(self.outbound_text_days),
            unmatched=before(self.unmatched_days),
            unmatched_receipts=before(self.unmatched_receipts_days),
            sandbox=before(self.sandbox_days),
        )


class Cutoffs(BaseModel):
    """Per kind, the time before which it goes (strictly older than the cutoff)."""

    model_config = ConfigDict(frozen=True)

    message_text: datetime
    audit: datetime
    outbound_text: datetime
    unmatched: datetime
    unmatched_receipts: datetime
    sandbox: datetime


def load_retention(path: Path = DEFAULT_FILE) -> RetentionPolicy:
    """The file's policy; :class:`ConfigError` naming file, line and field otherwise. A missing
    file is an error: deleting personal data by defaults nobody chose is not a choice."""
    if not path.exists():
        raise ConfigError([Problem(str(path), None, "no retention policy file")])
    doc = load_yaml(path)
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        raise ConfigError([Problem(str(path), doc.line(()), "expected a mapping of settings")])
    try:
        return RetentionPolicy.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc, doc)) from exc
