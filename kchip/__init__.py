"""kchip: turn a trained KirchhoffNet into a SkyWater 130 nm analog chip."""
__version__ = "0.1.0"
