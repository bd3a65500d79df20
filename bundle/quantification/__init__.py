"""From masks to numbers and maps, for any masks (the network's, a baseline's, a manual segmentation):

- ``burden``: LA, wall and scar volumes and scar % of the wall;
- ``surface``: the LA mesh with the scar projected onto it, mesh files and renders; ``surface_report``: its report
  columns and files per scan;
- ``qc``: the quality-check rules; ``quality``: the joint discriminator's confidence (``qc_score``);
- ``folder``: a whole prediction folder quantified (``jasgan-quantify``).
"""
