"""Calculator factories for registered models whose packages need a step before the ASE
calculator (the rest are named by their own ``module:class``)."""

from __future__ import annotations


def chgnet(version: str = "0.3.0", device: str = "cpu"):
    """CHGNet's ASE calculator with the weights of ``version`` from the chgnet wheel."""
    import torch
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    # CHGNet's weights and graphs are float32; the process runs this model only.
    torch.set_default_dtype(torch.float32)
    model = CHGNet.load(model_name=version, use_device=device, verbose=False)
    # stress_weight: CHGNet predicts GPa; the default converts to ASE's eV/Å³.
    return CHGNetCalculator(model, use_device=device, on_isolated_atoms="ignore")
