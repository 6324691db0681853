"""The three execution paths of a resolved plan, and the one place that picks between them.

`routing` decides (once, in `tritonsqrt.plan.resolve`) which path a call takes: `torch`
(`torch_path`, plain torch on any device), `fused` (`fused_path`, one Triton program per
matrix, n <= 64) or `tiled` (`tiled_path`, a chain of tiled Triton launches, any n).
`custom_ops` is the torch.library boundary that runs the chosen path forward and backward.
"""
