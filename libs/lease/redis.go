package lease

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a Store shared by every replica through Redis. Expiry is Redis's
// own (PX), so a dead holder's lease frees itself on the server's clock.
type Redis struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewRedis returns a Redis store whose keys start with prefix (for example
// "accessbus:lease:").
func NewRedis(rdb redis.UniversalClient, prefix string) *Redis {
	return &Redis{rdb: rdb, prefix: prefix}
}

// Only the token that holds a lease may extend or free it.
var (
	renewScript   = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) else return 0 end`)
	releaseScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end`)
)

// TryAcquire implements Store.
func (s *Redis) TryAcquire(ctx context.Context, name, token string, ttl time.Duration) (bool, error) {
	return s.rdb.SetNX(ctx, s.prefix+name, token, ttl).Result()
}

// Renew implements Store.
func (s *Redis) Renew(ctx context.Context, name, token string, ttl time.Duration) (bool, error) {
	n, err := renewScript.Run(ctx, s.rdb, []string{s.prefix + name}, token, ttl.Milliseconds()).Int()
	return n == 1, err
}

// Release implements Store.
func (s *Redis) Release(ctx context.Context, name, token string) error {
	return releaseScript.Run(ctx, s.rdb, []string{s.prefix + name}, token).Err()
}

// Holder implements Store.
func (s *Redis) Holder(ctx context.Context, name string) (string, error) {
	v, err := s.rdb.Get(ctx, s.prefix+name).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, err
}
