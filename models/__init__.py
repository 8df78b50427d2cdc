"""Uptake scoring: reference organs, lesions, Krenning grades, eligibility.

Works on octoscan's image types (``octoscan.imaging.types``), never on pydicom datasets, and
imports nothing from ``octoscan.pipelines``.
"""
