"""Deterministic demo data: factory sensors, marketing events and ERP documents, sent to a pluggable sink."""
