package ratelimit

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The take script admits by the rule of Store (store.go): the pace of
// interval, headroom included, the catch-up of a late admission, and the
// log of the last admissions (KEYS[4], newest first, as many as the pace)
// that keeps any window from holding more than the pace.
//
// Times in the scripts are microseconds of the Redis server's clock (TIME),
// so replicas with skewed clocks pace one schedule. Numbers written back are
// formatted with %.0f because Lua's default formatting keeps only 14 digits,
// which would round a microsecond timestamp.
const takeScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local lead = tonumber(ARGV[10])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat - now > lead then
  return {0, math.ceil(tat - now - lead), 0, 0}
end
local limit = tonumber(redis.call('GET', KEYS[2]) or ARGV[1])
local period = tonumber(ARGV[3])
local window = redis.call('GET', KEYS[5])
if window then
  period = tonumber(window) / tonumber(ARGV[7])
end
local pace = tonumber(ARGV[2]) * limit
if limit > 1 and pace > limit - 1 then
  pace = limit - 1
end
local interval = period / pace
local cap = math.max(1, math.floor(pace + 1e-9))
local due = math.max(now, tat)
local n = redis.call('LLEN', KEYS[4])
if n > cap then
  redis.call('LTRIM', KEYS[4], 0, cap - 1)
  n = cap
end
if n == cap then
  due = math.max(due, tonumber(redis.call('LINDEX', KEYS[4], -1)) + period + tonumber(ARGV[9]))
  if due - now > lead then
    return {0, math.ceil(due - now - lead), 0, 0}
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', string.format('%.0f', now))
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[4]) then
  local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  return {0, math.ceil(tonumber(first[2]) - now), 1, 0}
end
local ttl = tonumber(ARGV[5])
redis.call('ZADD', KEYS[3], string.format('%.0f', now + ttl), ARGV[6])
redis.call('PEXPIRE', KEYS[3], string.format('%.0f', math.ceil(ttl / 1000) + 1000))
redis.call('LPUSH', KEYS[4], string.format('%.0f', due))
redis.call('LTRIM', KEYS[4], 0, cap - 1)
redis.call('PEXPIRE', KEYS[4], string.format('%.0f', math.ceil((due - now + period) / 1000) + 1000))
local next = due + interval
if tat > 0 and due - tat < math.max(interval, tonumber(ARGV[8])) then
  next = math.max(tat + interval, due + interval / 2)
end
redis.call('SET', KEYS[1], string.format('%.0f', next), 'PX', string.format('%.0f', math.ceil(math.max(next - now, 0) / 1000) + 1000))
return {1, 0, 0, math.floor(due - now)}
`

const pauseScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local d = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if now + d > tat then
  redis.call('SET', KEYS[1], string.format('%.0f', now + d), 'PX', string.format('%.0f', math.ceil(d / 1000) + 1000))
end
return 1
`

// learnedTTL bounds how long a learned ceiling outlives the last response
// that confirmed it, so a changed Okta plan is not paced by a stale one.
const learnedTTL = 24 * time.Hour

// RedisStore is a Store shared through Redis by every replica of every
// service. Keys of one org share a hash tag, so it works on Redis Cluster.
type RedisStore struct {
	rdb    redis.UniversalClient
	prefix string
	take   *redis.Script
	pause  *redis.Script
}

// NewRedisStore returns a Store on rdb whose keys all begin with prefix.
func NewRedisStore(rdb redis.UniversalClient, prefix string) *RedisStore {
	return &RedisStore{rdb: rdb, prefix: prefix, take: redis.NewScript(takeScript), pause: redis.NewScript(pauseScript)}
}

func (s *RedisStore) rateKey(org, bucket string) string {
	return s.prefix + "ratelimit:{" + org + "}:tat:" + bucket
}

func (s *RedisStore) limitKey(org, bucket string) string {
	return s.prefix + "ratelimit:{" + org + "}:limit:" + bucket
}

func (s *RedisStore) logKey(org, bucket string) string {
	return s.prefix + "ratelimit:{" + org + "}:log:" + bucket
}

func (s *RedisStore) windowKey(org, bucket string) string {
	return s.prefix + "ratelimit:{" + org + "}:window:" + bucket
}

func (s *RedisStore) slotsKey(org string) string {
	return s.prefix + "ratelimit:{" + org + "}:slots"
}

// Take implements Store.
func (s *RedisStore) Take(ctx context.Context, r TakeRequest) (TakeResult, error) {
	keys := []string{s.rateKey(r.Org, r.Bucket), s.limitKey(r.Org, r.Bucket), s.slotsKey(r.Org),
		s.logKey(r.Org, r.Bucket), s.windowKey(r.Org, r.Bucket)}
	scale := r.TimeScale
	if scale <= 0 {
		scale = 1
	}
	res, err := s.take.Run(ctx, s.rdb, keys,
		r.DefaultLimit,
		strconv.FormatFloat(r.Share, 'g', -1, 64),
		r.Period.Microseconds(),
		r.MaxSlots,
		r.SlotTTL.Microseconds(),
		r.SlotID,
		strconv.FormatFloat(scale, 'g', -1, 64),
		r.CatchUp.Microseconds(),
		r.Margin.Microseconds(),
		r.Lead.Microseconds(),
	).Int64Slice()
	if err != nil {
		return TakeResult{}, fmt.Errorf("take %s %s in redis: %w", r.Org, r.Bucket, err)
	}
	if len(res) != 4 {
		return TakeResult{}, fmt.Errorf("take %s %s in redis: unexpected reply %v", r.Org, r.Bucket, res)
	}
	return TakeResult{OK: res[0] == 1, Wait: time.Duration(res[1]) * time.Microsecond, Blocker: Blocker(res[2]),
		Delay: time.Duration(res[3]) * time.Microsecond}, nil
}

// Release implements Store.
func (s *RedisStore) Release(ctx context.Context, org, slotID string) error {
	if err := s.rdb.ZRem(ctx, s.slotsKey(org), slotID).Err(); err != nil {
		return fmt.Errorf("release slot of %s in redis: %w", org, err)
	}
	return nil
}

// SetLimit implements Store.
func (s *RedisStore) SetLimit(ctx context.Context, org, bucket string, limit int) error {
	if err := s.rdb.Set(ctx, s.limitKey(org, bucket), limit, learnedTTL).Err(); err != nil {
		return fmt.Errorf("set limit of %s %s in redis: %w", org, bucket, err)
	}
	return nil
}

// SetWindow implements Store. The window is kept in microseconds of the
// org's clock, for learnedTTL like a learned ceiling.
func (s *RedisStore) SetWindow(ctx context.Context, org, bucket string, window time.Duration) error {
	if err := s.rdb.Set(ctx, s.windowKey(org, bucket), window.Microseconds(), learnedTTL).Err(); err != nil {
		return fmt.Errorf("set window of %s %s in redis: %w", org, bucket, err)
	}
	return nil
}

// Pause implements Store.
func (s *RedisStore) Pause(ctx context.Context, org, bucket string, d time.Duration) error {
	if err := s.pause.Run(ctx, s.rdb, []string{s.rateKey(org, bucket)}, d.Microseconds()).Err(); err != nil {
		return fmt.Errorf("pause %s %s in redis: %w", org, bucket, err)
	}
	return nil
}
