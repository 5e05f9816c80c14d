"""Counterfactual explanations of anomaly detectors (Liznerski et al.): what would have to change
for the detector to call an anomaly normal.

A *bundle* is a trained generator (a ``cegan`` weights folder) with the detector it was trained
against and the dataset's FID feature extractor. Everything the counterfactual page shows comes
from the functions here: one image's counterfactual for a target score alpha and concept k, all
concepts side by side, the alpha sequence from 1 to 0, and the paper's metrics on the test set.

Two backends share this code: the GAN version (G maps images) and the DiffEdit version
(``backend == "diffedit"``: G(x) = A_dec(G'(psi(A_enc(x)), alpha, k)) with a text-conditional latent
diffusion model; psi, the DiffEdit edit towards the normal class, runs once per image and is kept in
the bundle, so moving a slider only runs G' and the decoder).

The package, one module per seam: :mod:`~xad.counterfactual.bundle` (loading a generator with its
detector and extractor, psi's cache, G and R on images), :mod:`~xad.counterfactual.explanation`
(one anomaly's counterfactuals, the alpha strip, the gallery), :mod:`~xad.counterfactual.evaluation`
(the paper's metrics on the test set) and :mod:`~xad.counterfactual.sd_edit` (DiffEdit with a
Stable Diffusion folder). The tables and cards are :mod:`xad.cards`.
"""
