"""Frame labelling: the phone covering each frame's centre, IGNORE where none does."""
from __future__ import annotations

import numpy as np
import pytest

from ds_w2v.models.wav2vec2 import preset_config
from ds_w2v.probe.frames import IGNORE, PHONE_IDS, frame_centres, frame_phone_labels


def test_worked_example():
    # stride 320, receptive field 400: frame t sees [320 t, 320 t + 400), its centre is 320 t + 200
    #   frame   0    1    2     3     4     5
    #   centre  200  520  840   1160  1480  1800
    phones = ["sil", "aa", "b", "sil"]
    spans = [(0, 500), (500, 1000), (1200, 1480), (1480, 1700)]
    # 200 in sil; 520, 840 in aa; 1160 in the gap 1000-1200 (a deleted q); 1480 is where b ends
    # and sil starts (end-exclusive: sil); 1800 after the last span
    labels = frame_phone_labels(phones, spans, 6, stride=320, receptive_field=400)
    expected = [PHONE_IDS["sil"], PHONE_IDS["aa"], PHONE_IDS["aa"], IGNORE, PHONE_IDS["sil"], IGNORE]
    assert labels.tolist() == expected
    assert frame_centres(3, 320, 400).tolist() == [200.0, 520.0, 840.0]


def test_order_of_spans_does_not_matter_and_lengths_must_agree():
    phones, spans = ["sil", "aa", "b"], [(0, 500), (500, 1000), (1000, 2000)]
    forward = frame_phone_labels(phones, spans, 6, 320, 400)
    backward = frame_phone_labels(phones[::-1], spans[::-1], 6, 320, 400)
    assert forward.tolist() == backward.tolist() and IGNORE not in forward.tolist()
    assert frame_phone_labels([], [], 4, 320, 400).tolist() == [IGNORE] * 4
    with pytest.raises(ValueError, match="2 phones but 1 spans"):
        frame_phone_labels(["aa", "b"], [(0, 10)], 4, 320, 400)


def test_base_geometry_is_20ms_frames_with_25ms_windows():
    """The numbers the convention is stated with are the model's own (and tiny's)."""
    for preset in ("tiny", "original"):
        cfg = preset_config(preset)
        assert (cfg.total_stride, cfg.receptive_field) == (320, 400)
        # one second of audio: 49 frames, the last one's window still inside the audio
        n = cfg.num_frames(16000)
        assert n == 49 and (n - 1) * 320 + 400 <= 16000 < n * 320 + 400
    labels = frame_phone_labels(["aa"], [(0, 16000)], 49, 320, 400)
    assert (labels == PHONE_IDS["aa"]).all() and labels.dtype == np.int64
