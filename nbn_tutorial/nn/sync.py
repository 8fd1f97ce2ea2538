"""NBN-aware conversion to SyncBatchNorm for multi-process (DDP) training."""
from __future__ import annotations

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from nbn_tutorial.nn.convert import move_batchnorm_state
from nbn_tutorial.nn.nbn import NormalizedBatchNorm2d, NormalizedSyncBatchNorm


def convert_sync_batchnorm(model: nn.Module, process_group=None) -> nn.Module:
    """NBN-aware ``nn.SyncBatchNorm.convert_sync_batchnorm``: NBN layers become NormalizedSyncBatchNorm.

    Torch's converter rebuilds every ``_BatchNorm`` subclass as a plain SyncBatchNorm, silently dropping
    NBN's normalisation and α. Here NBN layers keep γ, β, running statistics and their α (same
    Parameter, same ownership); other BatchNorm layers go through torch's converter. Like torch's, it
    converts in place and returns ``model`` (or the new layer if ``model`` itself is a BatchNorm).
    """
    if isinstance(model, NormalizedSyncBatchNorm):
        return model
    if isinstance(model, NormalizedBatchNorm2d):
        sync = NormalizedSyncBatchNorm(model.num_features, model.eps, model.momentum,
                                       track_running_stats=model.track_running_stats, process_group=process_group,
                                       device=model.weight.device, dtype=model.weight.dtype,
                                       normalize_bias=model.normalize_bias)
        move_batchnorm_state(model, sync)
        sync.use_alpha_of(model)
        return sync
    if isinstance(model, _BatchNorm):
        return nn.SyncBatchNorm.convert_sync_batchnorm(model, process_group)
    for name, child in model.named_children():
        model.add_module(name, convert_sync_batchnorm(child, process_group))
    return model
