-- An offer was not answered (no_answer, busy, rejected, failed): the call goes back to its original
-- place, the agent gets a miss and is auto-paused after miss_limit misses in a row. 'withdrawn'
-- (the worker never rang: caller gone, or already ringing another phone) returns both without a miss.
-- 'unregistered' (the SIP edge has no phone registered for the agent): no miss, the agent is paused
-- (reason no_phone) until they are ready again, so no more calls are offered to a phone that is not there.
-- KEYS: none (see lib.lua). ARGV: [1] prefix [2] now [3] day [4] offer id [5] reason
-- Returns 1 if the offer existed.
return offer_failed(ARGV[4], ARGV[5], ARGV[5] ~= 'withdrawn' and ARGV[5] ~= 'unregistered')
