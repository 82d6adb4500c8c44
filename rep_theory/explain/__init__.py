"""Layer 4, other explanations of the same model: cosets (Stander et al. 2024), rho-sets (Wu et al.
2025) and the verifiers that turn an explanation into a certified accuracy bound."""
