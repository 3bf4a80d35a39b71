"""Run as a script (one process, CPU, gloo): build the model under ``deepspeed.zero.Init`` with
ZeRO-3 partitioning and check that it computes what the unpartitioned model computes (the
positional conv's weight norm included: DeepSpeed issue #1045), then take a training step."""
import json
import os
import sys

import torch

os.environ.setdefault("DS_ACCELERATOR", "cpu")
import deepspeed  # noqa: E402

from ds_w2v import build_model  # noqa: E402

deepspeed.init_distributed(dist_backend="gloo")
CONFIG = {
    "train_micro_batch_size_per_gpu": 2,
    "gradient_accumulation_steps": 1,
    "zero_optimization": {"stage": 3, "stage3_param_persistence_threshold": 0},
    "zero_allow_untested_optimizer": True,
    "gradient_clipping": 1.0,
}
KW = dict(dropout=0.0, attention_dropout=0.0, dropout_input=0.0, encoder_layerdrop=0.0, mask_prob=0.0,
          mask_channel_prob=0.0)

torch.manual_seed(0)
ref = build_model("tiny", "ctc", **KW).eval()
with deepspeed.zero.Init(config_dict_or_path=CONFIG):
    model = build_model("tiny", "ctc", **KW)
partitioned = all(hasattr(p, "ds_id") and p.numel() == 0 for p in model.wav2vec2.encoder.pos_conv.parameters())
with deepspeed.zero.GatheredParameters(list(model.parameters()), modifier_rank=0):
    model.load_state_dict(ref.state_dict())
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
engine, _, _, _ = deepspeed.initialize(model=model, optimizer=opt, config=CONFIG)
x = torch.randn(2, 8000) * 0.1
lengths = torch.tensor([8000, 6000])
engine.eval()
with torch.no_grad():
    ours = engine(x, lengths).logits
    want = ref(x, lengths).logits
diff = float((ours - want).abs().max())
engine.train()
out = engine(x, lengths, targets=torch.tensor([[5, 6, 7], [8, 9, -100]]))
engine.backward(out.loss)
engine.step()
print(json.dumps({"partitioned": partitioned, "max_abs_diff": diff, "loss": float(out.loss)}))
sys.exit(0)
