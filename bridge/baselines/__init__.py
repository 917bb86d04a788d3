"""Baselines that bridge is compared against. Each lives in its own module; import it directly
(``from bridge.baselines.reference_cnn import ReferenceCNN``): nothing is imported here."""
