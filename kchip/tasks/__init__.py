"""Training the paper's task families: regression (Friedman, Diabetes), 2-D generation as a CNF, density
matching on the Rezende & Mohamed potentials, and digits classification with NE/Proj layers only.
Submodules: common (loop, checkpoints), regression, toy2d (data + potentials), generation, density, classify,
cli (`kchip train`, `kchip sample`)."""
