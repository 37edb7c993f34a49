"""Lua scripts of the Redis lease store; each runs atomically on one object's keys.

Keys of one object share a hash tag (``{ns:id}``), so each script touches one slot.
A lease value is ``"<host_id>|<token>"``.
"""

# KEYS[1] lease key, KEYS[2] fence counter key
# ARGV[1] host id, ARGV[2] lease TTL (ms), ARGV[3] fence counter TTL (ms)
# Returns {1, token} when acquired, {0, "<holder>|<token>"} when another host holds it.
# A lease this same host still holds (a leftover of an eviction whose release was lost)
# is replaced: the host gets a new, higher token, never its old one back.
ACQUIRE = """
local current = redis.call('GET', KEYS[1])
if current and string.sub(current, 1, string.len(ARGV[1]) + 1) ~= ARGV[1] .. '|' then
  return {0, current}
end
local token = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. token, 'PX', ARGV[2])
return {1, token}
"""

# KEYS[1] lease key; ARGV[1] expected value "<host>|<token>", ARGV[2] TTL (ms)
# Returns 1 when renewed, 0 when the lease is gone or held by someone else.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS[1] lease key; ARGV[1] expected value. Deletes only our own lease.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS[1] fence counter key; ARGV[1] floor, ARGV[2] counter TTL (ms)
# Raises the counter to at least the floor (after Redis lost it); never lowers it.
RAISE_FENCE = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return current
"""

# KEYS[1] lease key, KEYS[2] fence counter key
# ARGV[1] the dead holder's lease value, ARGV[2] new host id, ARGV[3] lease TTL (ms),
# ARGV[4] counter TTL (ms). Takes the lease of a host known dead, only if that exact
# lease is still in place; the new token is higher, so the fence stays in force.
TAKE_OVER = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return {0, redis.call('GET', KEYS[1]) or ''}
end
local token = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('SET', KEYS[1], ARGV[2] .. '|' .. token, 'PX', ARGV[3])
return {1, token}
"""
