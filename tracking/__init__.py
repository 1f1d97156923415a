"""Declarations, containers, seals, transfer rules, inspections, alerts, telemetry and the evidence chain (no Flask)."""
