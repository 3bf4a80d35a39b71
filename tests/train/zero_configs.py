"""The shipped CPU DeepSpeed config at another ZeRO stage, for the tests that move between stages."""
from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def zero_stage_config(tmp_path: Path, stage: int) -> Path:
    """``ds_configs/cpu.json`` (ZeRO-2) at ``stage``, written under ``tmp_path``."""
    ds = json.loads((ROOT / "ds_configs" / "cpu.json").read_text())
    ds["zero_optimization"] = {"stage": stage, **({"stage3_param_persistence_threshold": 0} if stage == 3 else {})}
    path = tmp_path / f"zero{stage}.json"
    path.write_text(json.dumps(ds))
    return path
