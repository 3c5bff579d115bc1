"""Live watching of many cameras on one box: readers, batched incremental inference, decisions
with hysteresis, events with evidence clips, and sinks that never lose an event."""
