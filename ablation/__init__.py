"""The CBAM ablation service."""
