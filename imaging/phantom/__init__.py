"""Synthetic SSTR phantom studies written as real DICOM (known truth for tests and benchmarks)."""
