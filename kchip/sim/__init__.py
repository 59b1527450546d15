"""Simulation stage: run SPICE decks (ngspice) and read waveforms. `kchip.sim.ngspice` is the generic runner."""
