"""The backbones a study can name, by family; `ablation.models` builds each family."""

from __future__ import annotations

# Family "cifar-resnet": He et al.'s CIFAR ResNet (6n+2 layers, written here); "resnet":
# torchvision's ImageNet ResNets and their ResNeXt/wide relatives; "mobilenet": torchvision's
# MobileNetV2.
BACKBONES: dict[str, str] = {
    "resnet8": "cifar-resnet",
    "resnet20": "cifar-resnet",
    "resnet32": "cifar-resnet",
    "resnet56": "cifar-resnet",
    "resnet18": "resnet",
    "resnet34": "resnet",
    "resnet50": "resnet",
    "resnet101": "resnet",
    "resnet152": "resnet",
    "resnext50_32x4d": "resnet",
    "resnext101_32x4d": "resnet",
    "wide_resnet50_2": "resnet",
    "mobilenet_v2": "mobilenet",
}
