"""Train a tiny CIFAR ResNet-8 with a checkpoint; test_train kills it mid-epoch and runs it again.

Usage: resume_fit.py CHECKPOINT OUT SLOW_AFTER. Prints ``step N`` after every step and, from step
SLOW_AFTER on, sleeps half a second per step so the parent can kill it mid-epoch. On completion
writes OUT.weights (the state dict) and OUT.json (the history).
"""

import json
import sys
import time

import torch

from resnet_lab import models as M
from resnet_lab.loader import DeviceLoader
from resnet_lab.recipes import Recipe
from resnet_lab.train import fit
from tests.helpers import synthetic_set

torch.set_num_threads(1)
ckpt, out, slow_after = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.manual_seed(0)
model = M.cifar_resnet(8, in_channels=1, num_classes=4)
train = DeviceLoader(synthetic_set(256), 32, augment="flip", device="cpu", seed=7)
test = DeviceLoader(synthetic_set(64, seed=1, train=False), 64, device="cpu")


def on_step(step):
    print("step", step, flush=True)
    if step >= slow_after:
        time.sleep(0.5)  # give the parent time to kill us mid-epoch


recipe = Recipe("tiny", lr=0.05, weight_decay=1e-4, batch_size=32, augment="flip")
h = fit(model, train, test, recipe=recipe, epochs=3, device="cpu", progress=False, checkpoint=ckpt, on_step=on_step)
torch.save(model.state_dict(), out + ".weights")
with open(out + ".json", "w") as f:
    json.dump(h.to_dict(), f)
