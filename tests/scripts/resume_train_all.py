"""Train two tiny networks with train_all in a run folder; test_runs kills it and runs it again.

Usage: resume_train_all.py RUN_FOLDER OUT slow|fast. With ``slow``, the second network (ResNet-14)
prints ``second net epoch`` and sleeps a second before each epoch, so the parent can kill it
mid-run. On completion writes OUT.weights (both state dicts) and OUT.json (status and records).
"""

import json
import sys
import time

import torch

from resnet_lab import models as M
from resnet_lab import train as T
from resnet_lab.recipes import Recipe
from resnet_lab.runs import train_all
from tests.helpers import synthetic_set

torch.set_num_threads(1)
folder, out, slow = sys.argv[1], sys.argv[2], sys.argv[3] == "slow"
if slow:  # slow the second network down, so the parent can kill it mid-run
    real = T.train_one_epoch

    def slowed(model, *a, **k):
        if model.arch.endswith("ResNet-14 (option A)"):
            print("second net epoch", flush=True)
            time.sleep(1.0)
        return real(model, *a, **k)

    T.train_one_epoch = slowed
torch.manual_seed(0)
nets = {"first": M.cifar_resnet(8, in_channels=1, num_classes=4),
        "second": M.cifar_resnet(14, in_channels=1, num_classes=4)}  # fmt: skip
recipe = Recipe("tiny", lr=0.05, weight_decay=1e-4, batch_size=32)
hs = train_all(recipe, nets, synthetic_set(96), synthetic_set(32, seed=1, train=False), 3, device="cpu",
               runs=folder, probe_steps=0)  # fmt: skip
torch.save({n: m.state_dict() for n, m in nets.items()}, out + ".weights")
with open(out + ".json", "w") as f:
    json.dump({n: {"status": h.info.status, "records": h.to_dict()["records"]} for n, h in hs.items()}, f)
