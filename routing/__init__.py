"""The transport network: nodes, legs, timetables, persistence base and route planning (no Flask)."""
