-- Dial policy caps for one callback: a number may be called back at most N times a day and a
-- source may request at most M callbacks an hour, counted site-wide. Both checked, then both
-- counted, in one step: two workers cannot together pass a cap, and a refused request counts nothing.
-- KEYS[1] per-number counter of this day   KEYS[2] per-source counter of this hour
-- ARGV[1] number cap (0 = none)  ARGV[2] number key TTL seconds
-- ARGV[3] source cap (0 = none)  ARGV[4] source key TTL seconds
-- Returns 'ok' | 'number_cap' | 'source_cap'.
local ncap, scap = tonumber(ARGV[1]), tonumber(ARGV[3])
if ncap > 0 and tonumber(redis.call('GET', KEYS[1]) or '0') >= ncap then return 'number_cap' end
if scap > 0 and tonumber(redis.call('GET', KEYS[2]) or '0') >= scap then return 'source_cap' end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 'ok'
