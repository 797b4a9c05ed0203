"""FlexSP runtime: runs heterogeneous sequence-parallel plans on torch.distributed."""
