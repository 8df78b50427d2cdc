"""DICOM discovery, loaders and geometry: images only, nothing about tumours.

Imports nothing from ``octoscan.models`` or ``octoscan.pipelines``.
"""
