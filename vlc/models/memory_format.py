"""Channels-last memory format for a network, with the layers oneDNN gets wrong kept in the contiguous layout.

oneDNN (torch's CPU convolution library) has an open bug, uxlfoundation/oneDNN#6035: the weight gradient of a 1x1
convolution with stride > 1 in channels-last (nhwc) layout with fewer input channels than its channel block writes
past its workspace. Measured with torch 2.14.1 on an AVX-512 BF16 CPU: 5 to 15 input channels abort the process
(``free(): invalid next size``) in float32 and bfloat16; 4 input channels under bfloat16 autocast give a silently wrong
weight gradient (75% relative error); 16 or more channels, or the contiguous layout, are exact. With oneDNN held to
its AVX2 kernels (``ONEDNN_MAX_CPU_ISA=AVX2``, as on an AVX2 machine), 1 to 7 input channels give silently wrong
float32 weight gradients (50% to 670% off), 8 or more are exact; the upstream report shows that form with 4.
Such convolutions are vlc's CNN's projection shortcuts on a small network (``stem_width: 8``) and any torchvision
body's downsampling layer with few channels.

:func:`to_channels_last` converts a network and keeps each matching convolution (and its input) contiguous; its
output goes back to channels-last, so the layers around it keep the fast layout. The guard's threshold leaves a
margin over the 16 channels measured, for CPUs whose kernels use wider channel blocks.
"""

import torch
from torch import nn

GUARDED_BELOW = 32
"""1x1 strided convolutions with fewer input channels than this run in the contiguous layout."""


def hits_onednn_bug(module: nn.Module) -> bool:
    """Whether ``module`` is a convolution of the form oneDNN#6035 breaks in channels-last (1x1, strided, few in)."""
    return (
        isinstance(module, nn.Conv2d)
        and module.kernel_size == (1, 1)
        and max(module.stride) > 1
        and module.in_channels < GUARDED_BELOW
    )


def _contiguous_input(module: nn.Module, args: tuple) -> tuple:
    return tuple(a.contiguous() if isinstance(a, torch.Tensor) else a for a in args)


def _channels_last_output(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
    return output.contiguous(memory_format=torch.channels_last)


def to_channels_last(net: nn.Module) -> nn.Module:
    """``net`` in channels-last memory format, except the convolutions :func:`hits_onednn_bug` names; returns ``net``.

    Those keep weights in the contiguous layout (a 1x1 filter bank's channels-last strides also count as contiguous,
    so ``.contiguous()`` would keep them: the layout is set by a clone), get their input made contiguous and give
    channels-last output. The guard is a pair of forward hooks, so the state dict and checkpoints do not change.
    """
    net = net.to(memory_format=torch.channels_last)
    for module in net.modules():
        if hits_onednn_bug(module):
            module.weight.data = module.weight.data.clone(memory_format=torch.contiguous_format)
            module.register_forward_pre_hook(_contiguous_input)
            module.register_forward_hook(_channels_last_output)
    return net
