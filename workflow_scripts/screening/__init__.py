"""Dopant screening: neutral formation energies and site preference from DFT and every model.

:mod:`.references` builds each element's reference phase (relaxed with CP2K as its own job),
:mod:`.formation` computes formation energies under chemical-potential limits and the preferred
site, :mod:`.dft_set` collects the DFT energies and geometries the screen needs,
:mod:`.model_screen` relaxes and evaluates the same structures with one model, and
:mod:`.compare` scores every model against DFT (in-sample and held-out dopants apart).
"""
