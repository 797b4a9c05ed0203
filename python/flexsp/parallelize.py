"""Parallelism applied to a model by small functions: activation checkpointing, FSDP2; and
`build_sharded_model`, the training model they make (with its optimizer).

FSDP2 `fully_shard` on every decoder layer and on the root, over all ranks (ZeRO-3, as in the
paper), with mixed precision through its `MixedPrecisionPolicy`: parameters are kept (and the
optimizer steps) in the master dtype, gathered in the compute dtype, and gradients are reduced
in float32.
"""

from __future__ import annotations

import torch
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

from flexsp.config import Config
from flexsp.model import build_model, decoder_layers
from flexsp.optim import build_optimizer

# name -> (compute dtype, gradient-reduction dtype); None: everything in the master dtype.
MIXED_PRECISION: dict[str, tuple[torch.dtype, torch.dtype] | None] = {
    "none": None,
    "bf16": (torch.bfloat16, torch.float32),
    "fp16": (torch.float16, torch.float32),
}


def mixed_precision_policy(name: str) -> MixedPrecisionPolicy:
    """FSDP2's policy for a config's `parallel.mixed_precision` name."""
    if name not in MIXED_PRECISION:
        raise ValueError(f"parallel.mixed_precision: unknown {name!r}; known: "
                         f"{', '.join(MIXED_PRECISION)}")
    dtypes = MIXED_PRECISION[name]
    if dtypes is None:
        return MixedPrecisionPolicy()
    return MixedPrecisionPolicy(param_dtype=dtypes[0], reduce_dtype=dtypes[1])


def compute_dtype(name: str, master: torch.dtype) -> torch.dtype:
    dtypes = MIXED_PRECISION[name]
    return master if dtypes is None else dtypes[0]


def apply_activation_checkpointing(model: torch.nn.Module) -> None:
    """Wraps every decoder layer so that its activations are recomputed in backward
    (non-reentrant checkpointing: the keyword arguments, the PackedContext among them, pass
    through). Must come before `apply_fsdp`, so each FSDP unit is the wrapper."""
    layers = decoder_layers(model)
    for i, layer in enumerate(layers):
        layers[i] = checkpoint_wrapper(layer, preserve_rng_state=False)


def apply_fsdp(model: torch.nn.Module, mesh: DeviceMesh,
               policy: MixedPrecisionPolicy | None = None) -> None:
    """Shards every decoder layer, then the rest, over all ranks of `mesh`.

    Gradients are reduce-scattered as a plain sum: the loss is already divided by the global
    token count, so FSDP's default average over ranks would divide twice. With a factor of 1
    and float32, FSDP would pick ReduceOp.PREMUL_SUM, which gloo rejects; forcing plain SUM
    reductions works on gloo and NCCL alike. Both settings are per FSDP module, hence set on each.

    A rank idle in a micro-batch (or holding only padding) gives some parameters no gradient
    (q/k norms, biases behind zeroed attention). FSDP would then reduce-scatter fewer
    parameters on that rank than on the others, a collective mismatch;
    `set_reduce_scatter_unused_params` makes it send zeros for them instead.
    """
    policy = policy or MixedPrecisionPolicy()
    for layer in decoder_layers(model):
        fully_shard(layer, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.set_gradient_divide_factor(1.0)
            module.set_force_sum_reduction_for_comms(True)
    model.set_reduce_scatter_unused_params(True)


def build_sharded_model(config: Config, hf_config, world_size: int, device: torch.device
                        ) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """The model of `hf_config` (the transformers config already read from `config.model`;
    seeded: identical initial parameters on every rank), activation checkpointing if
    configured, FSDP2 over all ranks with the configured mixed precision, and AdamW."""
    model = build_model(config.model, hf_config, getattr(torch, config.train.dtype),
                        config.train.seed)
    if config.parallel.activation_checkpointing:
        apply_activation_checkpointing(model)
    apply_fsdp(model, init_device_mesh(device.type, (world_size,)),
               mixed_precision_policy(config.parallel.mixed_precision))
    optimizer = build_optimizer(model, config.train.lr, config.train.betas,
                                config.train.weight_decay)
    return model, optimizer
