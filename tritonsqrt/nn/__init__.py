"""Layers built on the matrix roots.

- `DecorrelatedBatchNorm`: batch norm that whitens groups of channels (DBN, Huang et al., CVPR 2018);
  `SyncDecorrelatedBatchNorm` / `convert_sync_decorrelated_batchnorm` for several processes.
- `ZCAWhitening`: fit-then-transform data whitening with kornia's semantics (kornia.enhance.ZCAWhitening).
- `CovariancePooling`: the iSQRT-COV / MPN-COV head (Li et al., CVPR 2018 / ICCV 2017).

None has root code of its own: `method=`, `eps=` and the other keywords of `tritonsqrt.inv_sqrtm` /
`tritonsqrt.sqrtm` (`backend`, `iterations`, `max_condition`, `precision`, `degree`) pass through,
checked when the layer is built.
"""

from .covariance_pooling import CovariancePooling
from .decorrelated_batch_norm import DecorrelatedBatchNorm
from .sync_decorrelated_batch_norm import SyncDecorrelatedBatchNorm, convert_sync_decorrelated_batchnorm
from .zca_whitening import ZCAWhitening

__all__ = ["CovariancePooling", "DecorrelatedBatchNorm", "SyncDecorrelatedBatchNorm",
           "convert_sync_decorrelated_batchnorm", "ZCAWhitening"]
