-- Forget a deleted list once list_op.lua has deleted its contacts. Its summary leaves the campaign's lists.
-- Contacts of it that a dial held then were left by the delete, in the list's index: their dial's results
-- stay in the results export under the list's id, so the summary moves to the deleted lists (the export
-- reads both); with none left, the index goes too.
-- KEYS[1] the campaign's lists hash   KEYS[2] its deleted lists hash   KEYS[3] the list's index
-- ARGV[1] list id
-- Returns the number of the list's contacts kept for the export.
local summary = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
local kept = redis.call('ZCARD', KEYS[3])
if kept > 0 and summary then
  redis.call('HSET', KEYS[2], ARGV[1], summary)
else
  redis.call('DEL', KEYS[3])
end
return kept
