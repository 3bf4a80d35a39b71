"""``ds-w2v pretrain | finetune-ctc | finetune-cls | evaluate``: see ds_w2v/train/cli.py."""
from ..train.cli import make_command

pretrain = make_command("pretrain")
finetune_ctc = make_command("finetune-ctc")
finetune_cls = make_command("finetune-cls")
evaluate = make_command("evaluate")
