"""The ACD: skill-based queues whose whole state lives in Redis, matched atomically in Lua."""
