"""`python -m ablation.attention`: build CBAM's CPU kernels into the cache now (fast/native.py)."""

# Builds and reports, computes nothing a trial uses: it cannot change a result. Proof: it only
# calls fast.native.main, whose library is keyed by the hashed cbam_kernels.cpp
# (tests/attention/test_native.py builds it; tests/study/test_trials.py checks the hash rule).
RESULT_NEUTRAL = True

if __name__ == "__main__":
    from ablation.attention.fast.native import main

    main()
