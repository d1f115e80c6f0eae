"""The settings of one model stream, recorded in every archive, checked before any is used."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from bbzip.bbans.tables import MAX_TABLE_PRECISION

MAX_BATCH = 4096
# K-step inference repeats the whole network K times per image at both ends: a few steps buy
# most of what it gives (README, Results), and a bound keeps the work an archive can ask of a
# decoder in proportion to its images.
MAX_K_STEPS = 64


class SettingsError(ValueError):
    """Coding settings out of their bounds (from a user or from an archive's header)."""


@dataclass(frozen=True)
class CodingSettings:
    k_steps: int = 0
    lr: float = 5e-3
    seed: int = 0
    batch_size: int = 100
    bucket_bits: int = 12
    posterior_precision: int = 24
    likelihood_precision: int = 24

    def __post_init__(self):
        for item in fields(self):
            value = getattr(self, item.name)
            wanted = float if item.name == "lr" else int
            if isinstance(value, bool) or not isinstance(value, wanted if wanted is int else (int, float)):
                raise SettingsError(f"{item.name} must be {'a number' if wanted is float else 'an integer'}, got {value!r}")
        checks = [
            ("k_steps", 0 <= self.k_steps <= MAX_K_STEPS, f"0..{MAX_K_STEPS}"),
            ("lr", math.isfinite(self.lr) and 0 < self.lr <= 1, "a finite number in (0, 1]"),
            ("seed", 0 <= self.seed < 2**63, "0..2^63-1"),
            ("batch_size", 1 <= self.batch_size <= MAX_BATCH, f"1..{MAX_BATCH}"),
            ("bucket_bits", 1 <= self.bucket_bits <= 16, "1..16"),
            ("posterior_precision", self.bucket_bits + 2 <= self.posterior_precision <= MAX_TABLE_PRECISION,
             f"bucket_bits + 2..{MAX_TABLE_PRECISION}"),
            ("likelihood_precision", 9 <= self.likelihood_precision <= MAX_TABLE_PRECISION, f"9..{MAX_TABLE_PRECISION}"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise SettingsError(f"{name} must be {allowed}, got {getattr(self, name)!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values) -> "CodingSettings":
        """From an archive header: exactly the known keys, each checked."""
        if not isinstance(values, dict):
            raise SettingsError("coding settings must be a mapping")
        names = {item.name for item in fields(cls)}
        if set(values) != names:
            raise SettingsError(f"coding settings must have exactly the keys {sorted(names)}")
        return cls(**values)
