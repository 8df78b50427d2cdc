"""Composition: one study end to end, batches, outputs, reports, the DICOM node and the CLI."""
