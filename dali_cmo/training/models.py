"""Classifiers for long-tailed training.

* :func:`resnet32` -- the CIFAR ResNet-32 of the long-tailed literature (He et al. 2016, the
  LDAM-DRW and CMO reference code): a 3x3 stem with 16 channels, three stages of five
  BasicBlocks with 16/32/64 channels (stride 1/2/2), global average pooling, a linear head.
  Where a stage changes width it uses shortcut option A: the identity subsampled by 2 and
  zero-padded in channels (no parameters). Conv and linear weights get Kaiming-normal init.
  About 0.46M parameters (464,154 for 10 classes, 470,004 for 100).
* torchvision ImageNet ResNets (``resnet50``, ``resnet101``, ``resnet152``,
  ``wide_resnet50_2``), built untrained.
* :class:`NormedLinear` -- the cosine head that LDAM expects, in place of the last linear layer.
* :func:`load_pretrained` -- weights from a torchvision state-dict file (fine-tuning, e.g. the
  usual Places-LT protocol), the classifier head left new where its shape differs.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

MODEL_NAMES = ("resnet32", "resnet50", "resnet101", "resnet152", "wide_resnet50_2")


class NormedLinear(nn.Module):
    """Cosine classifier: ``out[i, k] = <x_i / |x_i|, W[:, k] / |W[:, k]|>``, in [-1, 1].

    ``weight`` has shape (in_features, out_features), one column per class, initialised
    uniform in [-1, 1] and rescaled to unit columns, as in the LDAM-DRW reference. No bias.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        weight = torch.empty(in_features, out_features).uniform_(-1, 1)
        self.weight = nn.Parameter(F.normalize(weight, dim=0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1) @ F.normalize(self.weight, dim=0)


class _PadShortcut(nn.Module):
    """Option-A shortcut: ``x[:, :, ::2, ::2]`` zero-padded from ``in_planes`` to ``planes``
    channels (``planes // 4`` zero channels on each side, as in the reference)."""

    def __init__(self, planes: int) -> None:
        super().__init__()
        self.pad = planes // 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class BasicBlock(nn.Module):
    """``relu(bn(conv3x3(relu(bn(conv3x3(x))))) + shortcut(x))``."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        changes_shape = stride != 1 or in_planes != planes
        self.shortcut = _PadShortcut(planes) if changes_shape else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """CIFAR ResNet with ``blocks_per_stage`` BasicBlocks in each of three stages."""

    def __init__(self, blocks_per_stage: int, num_classes: int,
                 normed_linear: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        stages, in_planes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(blocks_per_stage):
                blocks.append(BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = NormedLinear(64, num_classes) if normed_linear else nn.Linear(64, num_classes)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


def resnet32(num_classes: int, normed_linear: bool = False) -> CifarResNet:
    """CIFAR ResNet-32 (3 stages x 5 BasicBlocks, 16/32/64 channels, option-A shortcuts)."""
    return CifarResNet(5, num_classes, normed_linear)


def build_model(name: str, num_classes: int, *, normed_linear: bool = False) -> nn.Module:
    """A classifier by name (see ``MODEL_NAMES``), untrained, with ``num_classes`` outputs.

    ``normed_linear=True`` replaces the last linear layer by :class:`NormedLinear` (for LDAM).
    """
    if name == "resnet32":
        return resnet32(num_classes, normed_linear)
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    model = getattr(torchvision.models, name)(weights=None, num_classes=num_classes)
    if normed_linear:
        model.fc = NormedLinear(model.fc.in_features, num_classes)
    return model


def load_pretrained(model: nn.Module, path: str | Path) -> list[str]:
    """Load a state-dict file (``torch.save(model.state_dict(), path)``, as torchvision's
    weight files are) into ``model``, for fine-tuning.

    Every parameter and buffer must be in the file with its shape, except the classifier head
    ``fc.*``, which stays as initialised where its shape differs (another number of classes, or
    the cosine head of LDAM).

    Args:
        model: the classifier (from :func:`build_model`).
        path: the state-dict file.

    Returns:
        The names left as initialised (the head's).
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # includes objects that are not plain tensors
        raise ValueError(f"{path}: not a torch state-dict file (it does not unpickle as "
                         f"tensors)") from None
    except (OSError, RuntimeError, EOFError, ValueError) as error:
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        raise ValueError(f"{path}: not a readable torch state-dict file ({reason})") from None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict (parameter name -> tensor), as written by "
                         f"torch.save(model.state_dict(), path)")
    own = model.state_dict()
    fresh = [k for k in own if k.startswith("fc.")
             and (k not in state or state[k].shape != own[k].shape)]
    missing = [k for k in own if k not in state and k not in fresh]
    unexpected = [k for k in state if k not in own and not k.startswith("fc.")]
    wrong = [f"{k} {tuple(state[k].shape)} (model: {tuple(own[k].shape)})" for k in own
             if k in state and k not in fresh and state[k].shape != own[k].shape]
    for what, names in (("missing", missing), ("unexpected", unexpected),
                        ("of another shape", wrong)):
        if names:
            raise ValueError(f"{path}: does not fit the model: {len(names)} entries {what}, "
                             f"e.g. {', '.join(names[:3])}")
    model.load_state_dict({k: v for k, v in state.items() if k in own and k not in fresh},
                          strict=False)
    return fresh


def autocast(device: str, enabled: bool):
    """``--amp``: float16 autocast on CUDA (with a gradient scaler), bfloat16 on CPU (no scaler
    needed: bfloat16 has float32's exponent range)."""
    return torch.autocast(device, dtype=torch.float16 if device == "cuda" else torch.bfloat16,
                          enabled=enabled)
