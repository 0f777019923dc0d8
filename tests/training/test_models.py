"""Model shapes and parameter counts derived from the architecture by hand."""
import pytest
import torch

from dali_cmo.training.models import NormedLinear, build_model, resnet32

# CIFAR ResNet-32 without its head, counted by hand (3x3 convs without bias, BN = 2 per channel):
#   stem: 3*16*9 + 2*16                                            =     464
#   stage 1: 5 * (2 * 16*16*9 + 2 * 2*16)                          =  23,360
#   stage 2: (16*32*9 + 32*32*9 + 4*32) + 4 * (2*32*32*9 + 4*32)   =  88,192
#   stage 3: (32*64*9 + 64*64*9 + 4*64) + 4 * (2*64*64*9 + 4*64)   = 351,488
#   option-A shortcuts have no parameters                         => 463,504
BODY = 464 + 23_360 + 88_192 + 351_488


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_resnet32_parameter_count():
    assert BODY == 463_504
    assert n_params(resnet32(10)) == BODY + 64 * 10 + 10 == 464_154
    assert n_params(resnet32(100)) == BODY + 64 * 100 + 100 == 470_004
    assert n_params(resnet32(100, normed_linear=True)) == BODY + 64 * 100  # no bias
    convs = [m for m in resnet32(10).modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 31 and all(c.kernel_size == (3, 3) for c in convs)


def test_resnet32_output_shape():
    model = resnet32(100).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 100)


def test_normed_linear_is_cosine():
    head = NormedLinear(2, 3)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0, -5.0], [0.0, 2.0, 0.0]]))
    out = head(torch.tensor([[3.0, 4.0]]))
    assert out[0].tolist() == pytest.approx([0.6, 0.8, -0.6])
    out = NormedLinear(16, 7)(torch.randn(32, 16) * 100)
    assert out.abs().max().item() <= 1.0 + 1e-6


def test_build_model_torchvision_and_normed_head():
    model = build_model("resnet50", 10).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 10)
    cosine = build_model("resnet50", 10, normed_linear=True).eval()
    assert isinstance(cosine.fc, NormedLinear) and cosine.fc.weight.shape == (2048, 10)
    with torch.no_grad():
        assert cosine(torch.randn(2, 3, 64, 64)).abs().max().item() <= 1.0 + 1e-6
    assert isinstance(build_model("resnet32", 5, normed_linear=True).fc, NormedLinear)
    with pytest.raises(ValueError, match="model"):
        build_model("vgg16", 10)
