-- Estimated wait: position * average handle time / staffed agents (available, reserved, on call,
-- wrap-up) of the call's queue; for a new caller the position is the queue length + 1.
-- KEYS: none (see lib.lua). ARGV: [1] prefix [2] now [3] day [4] queue [5] call id or ''
--   [6] the day before (YYYYMMDD): its AHT stands in until today has handled calls
-- Returns {ewt seconds as string or '' when no agent is staffed, position}.
local q, c = ARGV[4], ARGV[5]
local qc = qconf(q)
if not qc then return {'', 0} end
local pos
if c ~= '' then
  local r = redis.call('ZRANK', K.waiting(q), c)
  if not r then return {'', 0} end
  pos = r + 1
else
  pos = redis.call('ZCARD', K.waiting(q)) + 1
end
local staffed = redis.call('SCARD', K.staffed(q))
if staffed == 0 then return {'', pos} end
local aht = aht_of(q, qc, ARGV[6] or '')
if aht <= 0 then aht = 180 end
-- the caller at position p waits for p answers ahead of and including itself, minus one free slot
local free = redis.call('ZCARD', K.free(q))
local ahead = math.max(0, pos - free)
return {tostring(ahead * aht / staffed), pos}
