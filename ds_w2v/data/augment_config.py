"""The settings of training-time augmentation (``data.augment.*``), checked on construction; the
effects are in :mod:`ds_w2v.data.augment`, the noise and RIR sources in
:mod:`ds_w2v.data.augment_sources`."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass
class AugmentConfig:
    """Training-stream augmentation (``data.augment.*``); everything off by default."""

    speeds: tuple[float, ...] = ()
    """Speed factors, one drawn uniformly per utterance: ``[0.9, 1.0, 1.1]`` as Kaldi/ESPnet
    (Ko et al. 2015). ``()`` (or only 1.0): off. Each factor ``f`` resamples the utterance to
    ``len / f`` samples (0.9: 11 % longer; 1.1: 9 % shorter)."""
    noise: str | None = None
    """A folder of noise audio (recursive), or a prepared shard directory (``dataset.json``,
    loaded into memory: 115 MB per hour). None: no additive noise."""
    noise_prob: float = 1.0
    """Probability that an utterance gets noise (when ``noise`` is set)."""
    snr_db: tuple[float, float] = (5.0, 20.0)
    """Signal-to-noise ratio range in dB, drawn uniformly per noisy utterance."""
    rir: str | None = None
    """A folder of room impulse responses (recursive, any rate; e.g. the simulated RIRs of Ko et
    al. 2017). None: no reverberation."""
    rir_prob: float = 0.5
    """Probability that an utterance is reverberated (when ``rir`` is set)."""

    def __post_init__(self) -> None:
        self.speeds = tuple(float(s) for s in self.speeds)
        self.snr_db = (float(self.snr_db[0]), float(self.snr_db[1]))
        bad = [s for s in self.speeds if not (math.isfinite(s) and s > 0)]
        if bad:
            raise ValueError(f"config key data.augment.speeds: every factor must be > 0, got {list(self.speeds)}")
        low, high = self.snr_db
        if not (math.isfinite(low) and math.isfinite(high)) or low > high:
            raise ValueError(f"config key data.augment.snr_db: expected [low, high] dB with low <= high, "
                             f"got {list(self.snr_db)}")
        for key in ("noise_prob", "rir_prob"):
            p = getattr(self, key)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"config key data.augment.{key}: a probability in [0, 1], got {p}")

    @property
    def perturbs_speed(self) -> bool:
        return any(s != 1.0 for s in self.speeds)

    @property
    def mixes(self) -> bool:
        """Anything applied to collated rows (noise, RIR)."""
        return self.noise is not None or self.rir is not None

    @property
    def active(self) -> bool:
        return self.perturbs_speed or self.mixes


def describe(config: AugmentConfig) -> dict[str, Any]:
    """The settings that are on, for a log line."""
    out: dict[str, Any] = {}
    if config.perturbs_speed:
        out["speeds"] = list(config.speeds)
    if config.rir is not None:
        out.update(rir=config.rir, rir_prob=config.rir_prob)
    if config.noise is not None:
        out.update(noise=config.noise, noise_prob=config.noise_prob, snr_db=list(config.snr_db))
    return out
