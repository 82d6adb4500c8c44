"""rep-theory: universality in neural networks through representation theory.

Layers (data flows top to bottom, nothing imports upward): ``groups`` -> ``irreps`` -> ``data`` ->
``models`` -> ``train`` -> ``metrics`` -> ``experiments`` -> ``analysis`` -> ``cli``.
"""

__version__ = "0.1.0"
