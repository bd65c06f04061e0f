"""`python -m ablation.attention`: build CBAM's CPU kernels into the cache now (see native.py)."""

from ablation.attention.native import main

main()
